"""Notifications: consent, caps, quiet hours in local time, send-time optimisation, a
queue with retries, every send logged with its propensity (docs/notifications.md)."""

from feedwise.notifications.planner import claim_due, fit_bandit, plan, record
from feedwise.notifications.rules import NotificationRules, consents, violations
from feedwise.notifications.schedule import Slots, open_slots, slots
from feedwise.notifications.sendtime import SendTimeBandit

__all__ = ["NotificationRules", "SendTimeBandit", "Slots", "claim_due", "consents",
           "fit_bandit", "open_slots", "plan", "record", "slots", "violations"]
