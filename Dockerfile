# One image for every AZUREZO process (Synapse with our module, the coordination service, the CLI).
# Not built in CI (no Docker engine there); docker-compose.yml is checked by tests/azurezo_cli.
FROM python:3.11-slim

WORKDIR /opt/azurezo
COPY . /opt/azurezo
RUN pip install --no-cache-dir /opt/azurezo

# The templates (config/) are read from the source tree, not from site-packages.
ENV AZUREZO_CONFIG_DIR=/opt/azurezo/config \
    AZUREZO_HOME=/data \
    PYTHONUNBUFFERED=1
VOLUME /data
ENTRYPOINT []
CMD ["azurezo", "--help"]
