"""The worker: the Faust app (`app`), its service (`service`), transport and topic set-up."""
