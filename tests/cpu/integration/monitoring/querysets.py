"""Deterministic question sets for drift tests: one population about backend auth/payments code, and a shifted
one about frontend UI work — the kind of move that happens when a new team starts using the assistant."""

from __future__ import annotations

import itertools
import random

BACKEND_SUBJECTS = [
    "the bearer token", "the JWT signature", "a refund", "the payment intent", "the API key", "user permissions",
    "the session cookie", "the webhook secret", "an idempotency key", "the ledger entry", "a chargeback", "the OAuth scope",
]
BACKEND_TEMPLATES = [
    "How is {} verified in the payments service?", "Where do we validate {}?", "Which function checks {} before a transfer?",
    "What happens when {} is expired or invalid?", "Where is {} stored in the database?", "How does the auth middleware handle {}?",
    "Which module logs an error when {} is rejected?",
]
FRONTEND_SUBJECTS = [
    "the dark mode toggle", "the navigation sidebar", "the date picker", "the modal dialog", "the CSS grid layout", "the loading spinner",
    "the dropdown menu", "the toast notifications", "the responsive breakpoints", "the font sizes", "the avatar image", "the hover animation",
]
FRONTEND_TEMPLATES = [
    "How do I change the colour of {} in the React app?", "Why does {} flicker on Safari?", "Where is the stylesheet for {}?",
    "How do I make {} accessible with a keyboard?", "Which component renders {} on mobile?", "How can I animate {} with Tailwind?",
    "Where are the design tokens used by {}?",
]


def questions(subjects: list[str], templates: list[str], n: int, seed: int) -> list[str]:
    pool = [t.format(s) for t, s in itertools.product(templates, subjects)]
    random.Random(seed).shuffle(pool)
    return pool[:n]


def backend(n: int = 80, seed: int = 1) -> list[str]:
    return questions(BACKEND_SUBJECTS, BACKEND_TEMPLATES, n, seed)


def frontend(n: int = 40, seed: int = 2) -> list[str]:
    return questions(FRONTEND_SUBJECTS, FRONTEND_TEMPLATES, n, seed)
