"""The one settings object and its groups.

fields (what a setting is made of: help, group, parsing), groups (one small frozen dataclass per
group), validation (what cannot work is refused up front), settings (`Settings`: every group at
once), reference (the docs' settings page, written from the fields).
"""

from stream.settings.fields import ENV_PREFIX, GROUPS, setting_name
from stream.settings.settings import Settings

__all__ = ["ENV_PREFIX", "GROUPS", "Settings", "setting_name"]
