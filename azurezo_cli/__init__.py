"""The ``azurezo`` operator CLI: home initialisation, the ``up`` supervisor, directory and accounts."""
