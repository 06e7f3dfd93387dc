"""The one way a node's MQTT connection is made: paho, MQTT 3.1.1, mTLS from its bundle.

Used by the node client and by the archive (which is a node too), so both get
the same session rules: client id = node id, a persistent session, manual
acknowledgement (store first, then ack), and a patient connect timeout.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from certs import EnrolmentBundle

__all__ = ["node_client"]


def node_client(bundle: EnrolmentBundle, *, max_reconnect_delay: int = 30) -> mqtt.Client:
    """A paho client for ``bundle``'s node; callbacks are the caller's to set."""
    folder = Path(tempfile.mkdtemp(prefix=f"blo-{bundle.node}-tls-"))
    ca, cert, key = bundle.write_tls(folder)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=bundle.node,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=True,
    )
    client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
    client.reconnect_delay_set(min_delay=1, max_delay=max_reconnect_delay)
    # A busy broker may take seconds to answer CONNECT; giving up after paho's
    # default 5 s makes a second connection that takes the first one's session over.
    client.connect_timeout = 30.0
    client.max_inflight_messages_set(100)
    return client
