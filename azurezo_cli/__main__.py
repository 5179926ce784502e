"""``python -m azurezo_cli``: the same CLI as the ``azurezo`` entry point (used by the supervisor)."""

from azurezo_cli.main import app

app(prog_name="azurezo")
