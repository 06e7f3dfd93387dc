"""blo-demo: the field report's story, run on real clients, a real broker and real TLS.

``Demo`` (scenario.py) provisions a two-country PKI (network.py) for the
offices in offices.py, starts the embedded broker or Mosquitto with the
archive, one ``NodeClient`` per office (one behind a link that drops,
flaky.py), and tells the story in story.py, with an attacker (attacker.py).
``blo-demo`` (cli.py) shows it live (view.py).
"""

from demo.config import DemoError, DemoSettings, load_settings
from demo.flaky import FaultProxy
from demo.offices import Office, offices
from demo.scenario import Demo, Event, OfficeStatus, Outcome

__all__ = [
    "Demo",
    "DemoError",
    "DemoSettings",
    "Event",
    "FaultProxy",
    "Office",
    "OfficeStatus",
    "Outcome",
    "load_settings",
    "offices",
]
