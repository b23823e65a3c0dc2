"""Configuration of the OpenAI-compatible chat endpoint: which `model` ids exist and what each one answers from.

Lives in `codesense.yaml` under `chat:`. A *profile* is what an OpenAI client picks with `model`: a scope
(repositories) and a retrieval depth, answered by the configured generator. The default profile (`default_model`,
`codesense` unless renamed) always exists: every indexed repository, `answer.k`, `generator.*`. Example::

    chat:
      profiles:
        payments:
          description: Questions about the payments service only
          repos: [payments]
          k: 12
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class ChatProfile(BaseModel):
    """One `model` id of `/v1/chat/completions`."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field("", description="Shown in `GET /v1/models`; say what the profile answers about.")
    repos: list[str] = Field(default_factory=list, description="Repository ids this profile answers from; empty: every indexed repository.")
    k: int | None = Field(None, ge=1, le=50, description="Chunks retrieved per question; empty: `answer.k`.")


class ChatConfig(BaseModel):
    """The `model` ids of `/v1/chat/completions` (answer profiles) and how a conversation becomes a retrieval query."""

    model_config = ConfigDict(extra="forbid")

    default_model: str = Field(
        "codesense", description="`model` id of the default profile (all repositories, `answer.k`, the configured generator); always listed."
    )
    profiles: dict[str, ChatProfile] = Field(
        default_factory=dict, description="Further `model` ids: name → {description, repos, k}. Names: letters, digits, `.`, `_`, `:`, `-`."
    )
    context_messages: int = Field(
        2, ge=0, le=20, description="Earlier user messages of the conversation added to the retrieval query (not to the prompt); 0: the last message only."
    )
    context_chars: int = Field(1000, ge=0, le=8000, description="At most this many characters of earlier messages go into the retrieval query.")

    @field_validator("default_model")
    @classmethod
    def _default_id(cls, value: str) -> str:
        if not _MODEL_ID.match(value):
            raise ValueError(f"{value!r} is not a valid model id (letters, digits, '.', '_', ':', '-')")
        return value

    @model_validator(mode="after")
    def _profile_ids(self) -> "ChatConfig":
        for name in self.profiles:
            if not _MODEL_ID.match(name):
                raise ValueError(f"profiles: {name!r} is not a valid model id (letters, digits, '.', '_', ':', '-')")
        if self.default_model in self.profiles:
            raise ValueError(f"profiles: {self.default_model!r} is the default profile's name (default_model); choose another")
        return self

    def profile(self, model: str) -> ChatProfile | None:
        if model == self.default_model:
            return ChatProfile(description="All indexed repositories, answered by the configured generator.")
        return self.profiles.get(model)

    def model_ids(self) -> list[str]:
        return [self.default_model, *self.profiles]
