"""`secrets:` — keeping secrets out of the index (the patterns of secret files never read, and redaction)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_SECRET_FILES: tuple[str, ...] = (
    # environment files
    ".env", ".env.*", "*.env", ".envrc",
    # SSH and TLS private keys, keystores
    "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk", "*.pem", "*.key", "*.p12", "*.pfx",
    "*.jks", "*.keystore", "*.ppk", "*.gpg", "*.asc",
    # package-manager and tool credentials
    ".npmrc", ".yarnrc.yml", ".pypirc", ".netrc", "_netrc", ".git-credentials", ".pgpass", ".my.cnf", ".htpasswd",
    ".dockercfg", ".docker/config.json", "credentials.json", "credentials", "client_secret*.json", "service-account*.json",
    ".boto", ".s3cfg", ".aws/credentials", ".azure/credentials",
    # Kubernetes client configs, Terraform state (holds resource secrets in clear text)
    "kubeconfig", "kubeconfig.*", "*.kubeconfig", ".kube/config", "*.tfstate", "*.tfstate.backup",
)  # fmt: skip
"""gitignore-style patterns of files that are never read (skip reason `secret_file`); `secrets.exclude_files`."""


class SecretsConfig(BaseModel):
    """Keeping secrets out of the index: which files are never read, and whether file text is scrubbed."""

    model_config = ConfigDict(extra="forbid")

    exclude_files: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SECRET_FILES),
        description="gitignore-style patterns of secret files that are never read or indexed (skip reason `secret_file`): "
        "`.env`, SSH/TLS keys, tool credentials, kubeconfigs, Terraform state. Replacing the list replaces the defaults.",
    )
    redact: bool = Field(
        True,
        description="Scan indexed text with detect-secrets and replace each secret by `[redacted secret: <kind>]` before "
        "chunking (line count kept, so citations stay exact); counted as `secrets_redacted` in the index summary.",
    )
