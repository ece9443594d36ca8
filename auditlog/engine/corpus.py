"""Deterministic corpus of templated customer-support conversations (training data of the demos).

Every conversation has the same shape: alternating ``Customer: ...`` and ``Agent: ...`` lines, each
ending in a newline, opened by the customer and closed by the agent. Domains (billing, shipping,
account access, refunds, subscriptions, returns) fill their templates with names, order numbers,
dates, amounts and products drawn from a ``random.Random`` seeded by the caller, so the same seed
always yields the same text, on every platform.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from auditlog.errors import InvalidRequestError

__all__ = [
    "CORPUS_SEED",
    "DOMAINS",
    "conversation",
    "generate_corpus",
    "prompts",
]

CORPUS_SEED = 20240601

FIRST_NAMES = (
    "Maria", "James", "Aisha", "Chen", "Olivia", "Lucas", "Fatima", "Noah", "Sofia", "Liam",
    "Priya", "Mateo", "Emma", "Yuki", "Omar", "Hannah", "Diego", "Grace", "Ivan", "Zoe",
    "Kwame", "Elena", "Ravi", "Clara", "Tomas", "Leila", "Samuel", "Nina", "Hugo", "Amara",
)  # fmt: skip
LAST_NAMES = (
    "Garcia", "Smith", "Khan", "Wang", "Brown", "Silva", "Ahmed", "Muller", "Rossi", "Kim",
    "Patel", "Lopez", "Novak", "Tanaka", "Haddad", "Okafor", "Jensen", "Costa", "Ivanova", "Dubois",
)  # fmt: skip
AGENTS = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey")
PRODUCTS = (
    "wireless headphones", "coffee grinder", "running shoes", "desk lamp", "phone case",
    "backpack", "water bottle", "yoga mat", "kitchen scale", "bluetooth speaker",
    "winter jacket", "electric kettle",
)  # fmt: skip
CARRIERS = ("UPS", "FedEx", "DHL", "USPS")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
PLANS = ("Basic", "Plus", "Premium", "Family")


class _Slots:
    """The random values one conversation talks about."""

    def __init__(self, rng: random.Random) -> None:
        self.name = rng.choice(FIRST_NAMES)
        self.surname = rng.choice(LAST_NAMES)
        self.agent = rng.choice(AGENTS)
        self.order = f"#{rng.randint(100000, 999999)}"
        self.product = rng.choice(PRODUCTS)
        self.carrier = rng.choice(CARRIERS)
        self.date = f"{rng.choice(MONTHS)} {rng.randint(1, 28)}"
        self.new_date = f"{rng.choice(MONTHS)} {rng.randint(1, 28)}"
        self.amount = f"${rng.randint(5, 400)}.{rng.randint(0, 99):02d}"
        self.days = rng.randint(2, 7)
        self.plan = rng.choice(PLANS)
        self.email = f"{self.name.lower()}.{self.surname.lower()}@example.com"
        self.ticket = f"T-{rng.randint(1000, 9999)}"


def _billing(s: _Slots, rng: random.Random) -> list[str]:
    opening = rng.choice(
        (
            f"Hi, I was charged twice for order {s.order}. The amount was {s.amount}.",
            f"Hello, my card was billed {s.amount} two times for order {s.order} on {s.date}.",
        )
    )
    return [
        opening,
        f"Hello {s.name}, I am sorry about the double charge. I can see two payments of "
        f"{s.amount} for order {s.order}. I have reversed the second one.",
        "How long until I see the money back?",
        f"The refund of {s.amount} will reach your card within {s.days} business days. "
        f"Your reference is {s.ticket}.",
        "Great, thank you for your help.",
        f"You are welcome, {s.name}. Have a nice day!",
    ]


def _shipping(s: _Slots, rng: random.Random) -> list[str]:
    opening = rng.choice(
        (
            f"Hi, my order {s.order} has not arrived yet. It was supposed to come on {s.date}.",
            f"Hello, where is my {s.product}? The order number is {s.order}.",
        )
    )
    return [
        opening,
        f"Hello {s.name}, let me check order {s.order}. Your {s.product} was shipped with "
        f"{s.carrier} and is delayed at the local depot.",
        "When will it be delivered?",
        f"{s.carrier} expects to deliver it on {s.new_date}. I have sent the tracking link to "
        f"{s.email}.",
        "Okay, thanks.",
        f"You are welcome, {s.name}. Have a nice day!",
    ]


def _account(s: _Slots, rng: random.Random) -> list[str]:
    opening = rng.choice(
        (
            f"Hi, I cannot log in to my account. My email is {s.email}.",
            f"Hello, my account is locked. I use {s.email} to sign in.",
        )
    )
    return [
        opening,
        f"Hello {s.name}, I am sorry for the trouble. I found the account for {s.email}. "
        "It was locked after too many failed attempts.",
        "Can you unlock it?",
        f"Done. I have unlocked it and sent a password reset link to {s.email}. "
        "The link is valid for 24 hours.",
        "It works now, thank you.",
        f"You are welcome, {s.name}. Have a nice day!",
    ]


def _refund(s: _Slots, rng: random.Random) -> list[str]:
    opening = rng.choice(
        (
            f"Hi, I returned the {s.product} from order {s.order} but I have not got my refund.",
            f"Hello, I want a refund for order {s.order}. The {s.product} was broken.",
        )
    )
    return [
        opening,
        f"Hello {s.name}, I am sorry to hear that. I can see the {s.product} from order "
        f"{s.order}. I have approved a refund of {s.amount}.",
        "When will I get the money?",
        f"The refund of {s.amount} will reach your card within {s.days} business days. "
        f"Your reference is {s.ticket}.",
        "Thank you very much.",
        f"You are welcome, {s.name}. Have a nice day!",
    ]


def _subscription(s: _Slots, rng: random.Random) -> list[str]:
    opening = rng.choice(
        (
            f"Hi, I want to cancel my {s.plan} subscription. My email is {s.email}.",
            f"Hello, please cancel my {s.plan} plan before the next payment on {s.date}.",
        )
    )
    return [
        opening,
        f"Hello {s.name}, I can help with that. Your {s.plan} plan renews on {s.date} "
        f"for {s.amount}.",
        "Yes, please cancel it.",
        f"Done. Your {s.plan} plan is cancelled and you will not be charged on {s.date}. "
        f"Your reference is {s.ticket}.",
        "Thanks for the quick help.",
        f"You are welcome, {s.name}. Have a nice day!",
    ]


def _returns(s: _Slots, rng: random.Random) -> list[str]:
    opening = rng.choice(
        (
            f"Hi, the {s.product} from order {s.order} stopped working after {s.days} days.",
            f"Hello, I received a damaged {s.product}. My order number is {s.order}.",
        )
    )
    return [
        opening,
        f"Hello {s.name}, I am sorry about your {s.product}. I have created a free return "
        f"label for order {s.order} and sent it to {s.email}.",
        "Do I get a new one?",
        f"Yes. A new {s.product} will ship with {s.carrier} as soon as we scan the return. "
        f"Your reference is {s.ticket}.",
        "Perfect, thank you.",
        f"You are welcome, {s.name}. Have a nice day!",
    ]


DOMAINS: dict[str, Callable[[_Slots, random.Random], list[str]]] = {
    "billing": _billing,
    "shipping": _shipping,
    "account": _account,
    "refund": _refund,
    "subscription": _subscription,
    "returns": _returns,
}


def conversation(rng: random.Random) -> str:
    """One conversation: ``Customer: ...\\nAgent: ...\\n`` turns, customer first, agent last."""
    domain = rng.choice(sorted(DOMAINS))
    turns = DOMAINS[domain](_Slots(rng), rng)
    speakers = ("Customer", "Agent")
    return "".join(f"{speakers[i % 2]}: {line}\n" for i, line in enumerate(turns))


def generate_corpus(*, num_conversations: int, seed: int = CORPUS_SEED) -> Iterator[str]:
    """Yield ``num_conversations`` conversations; the same seed always yields the same text."""
    if num_conversations < 0:
        raise InvalidRequestError(f"num_conversations must be >= 0, got {num_conversations}")
    rng = random.Random(seed)
    for _ in range(num_conversations):
        yield conversation(rng)


def prompts(*, num_prompts: int, seed: int) -> list[str]:
    """Evaluation prompts: a conversation's first customer line followed by ``Agent:``."""
    out = []
    for text in generate_corpus(num_conversations=num_prompts, seed=seed):
        first_line = text.split("\n", 1)[0]
        out.append(f"{first_line}\nAgent:")
    return out
