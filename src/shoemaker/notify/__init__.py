"""Notifications: telling a person who is away when something needs them.

``messages`` turns events of the stream into messages (one builder per event type),
``channels`` sends them through apprise to the ``notify:`` channels, each on a thread of its
own. A project with channels configured gets a :class:`Notifier` listening to its bus
(``Project.open``), so a headless run, the dashboard's engine and a command line verb (a stop,
an approval) all notify the same way.
"""

from shoemaker.notify.channels import Channel, Notifier, NotifyStatus, Outcome
from shoemaker.notify.messages import BUILDERS, Message, message_for, trial_message

__all__ = [
    "BUILDERS",
    "Channel",
    "Message",
    "Notifier",
    "NotifyStatus",
    "Outcome",
    "message_for",
    "trial_message",
]
