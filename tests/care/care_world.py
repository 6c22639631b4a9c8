"""Small labelled intents and a small knowledge base for the care tests."""

from __future__ import annotations

import pandas as pd

#: Three intents, phrased several ways each (made up for the tests).
INTENTS = {
    "card_arrival": ["where is my card", "my card has not arrived yet",
                     "when will my new card come", "still waiting for my card to arrive",
                     "has my card been sent", "how long does card delivery take",
                     "track my card delivery", "card not delivered yet",
                     "i never got my card in the post", "when does the card arrive"],
    "refund": ["how do i get a refund", "i want my money back", "refund my purchase please",
               "can i get a refund for this order", "return the item and refund me",
               "how long does a refund take", "refund status", "i was promised a refund",
               "where is my refund", "request a refund"],
    "pin": ["how do i change my pin", "i forgot my pin", "reset my pin number",
            "my pin is blocked", "can i see my pin in the app", "unblock my pin",
            "change the pin of my card", "what is my pin", "pin not working at the atm",
            "set a new pin"],
}


def examples() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, variants in INTENTS.items():
        for v in variants:
            texts += [v, v.capitalize() + "?"]
            labels += [label, label]
    return texts, labels


def knowledge() -> pd.DataFrame:
    return pd.DataFrame([
        {"answer_id": "card-arrival", "intent": "card_arrival",
         "questions": ["Where is my card?", "My card has not arrived"],
         "answer": "Cards arrive within 5 working days.", "tags": ["cards"], "language": "en"},
        {"answer_id": "refund", "intent": "refund",
         "questions": ["How do I get a refund?", "I want my money back"],
         "answer": "Refunds reach your account within 3 days.", "tags": [], "language": "en"},
        {"answer_id": "pin", "intent": "pin",
         "questions": ["How do I change my PIN?", "I forgot my PIN"],
         "answer": "Change your PIN under Cards > PIN.", "tags": [], "language": "en"},
    ])
