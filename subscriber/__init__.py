"""blo-alert nodes: the running client (a BLO tablet or an HQ) and the officer's commands.

``NodeClient`` keeps one MQTT link and moves messages between it and two
SQLite files: the inbox (inbox.py) and the outbox (publisher.Outbox).
``blo-sub`` (cli.py) is its command line; views.py draws what an officer sees.
"""

from subscriber.client import NodeClient
from subscriber.inbox import Inbox, Stored
from subscriber.link import node_client
from subscriber.views import headline, inbox_table, message_view, status_table

__all__ = [
    "Inbox",
    "NodeClient",
    "Stored",
    "headline",
    "inbox_table",
    "message_view",
    "node_client",
    "status_table",
]
