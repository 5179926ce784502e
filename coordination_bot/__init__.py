"""The coordination bot: French ``!`` commands in Matrix rooms, through the coordination service.

An adapter (issue 8): it parses commands (``commands``), calls the service's HTTP API on behalf of
the sender (``service_client``), formats replies (``handlers``) and talks Matrix through a gateway
(``gateway``: matrix-nio in production, a recording fake in tests). It imports nothing of
``coordination``: the service alone decides who may see and do what.
"""
