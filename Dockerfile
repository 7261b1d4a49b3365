# The truthstream worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY connectors ./connectors
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["truthstream"]
CMD ["worker"]
