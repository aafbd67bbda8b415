"""Realistic fake credentials for the secret-scrubbing tests: the real prefixes, lengths and alphabets."""

from __future__ import annotations

import base64
import json
import random
import string

ALNUM = string.ascii_letters + string.digits


class CanaryFactory:
    """Seeded fake tokens of every kind the scrubber must catch."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def rand(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self._rng.choice(alphabet) for _ in range(n))

    @staticmethod
    def b64url(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def pem(self, label: str, first: str) -> str:
        body = [first + self.rand(64 - len(first), ALNUM + "+/")] + [self.rand(64, ALNUM + "+/") for _ in range(6)]
        return f"-----BEGIN {label}-----\n" + "\n".join(body) + f"\n{self.rand(20)}==\n-----END {label}-----\n"

    def battery(self) -> dict[str, str]:
        """One shaped credential of each kind: found by its look wherever it lands."""
        rand = self.rand
        return {
            "aws-access-key-id": "AKIA" + rand(16, string.ascii_uppercase + "234567"),
            "aws-secret-access-key": rand(17) + "/" + rand(11) + "+" + rand(10),
            "github-classic": "ghp_" + rand(36),
            "github-fine-grained": "github_pat_" + rand(22) + "_" + rand(59),
            "gitlab": "glpat-" + rand(20, ALNUM + "-_"),
            "slack": f"xoxb-{rand(11, string.digits)}-{rand(13, string.digits)}-{rand(24)}",
            "huggingface": "hf_" + rand(34),
            "openai": "sk-" + rand(48),
            "openai-project": "sk-proj-" + rand(74, ALNUM + "-_") + "T3BlbkFJ" + rand(74, ALNUM + "-_"),
            "anthropic": "sk-ant-api03-" + rand(93, ALNUM + "-_") + "AA",
            "google": "AIza" + rand(35, ALNUM + "-_"),
            "npm": "npm_" + rand(36),
            "pypi": "pypi-AgEIcHlwaS5vcmc" + rand(70, ALNUM + "-_"),
            "jwt": self.b64url(b'{"alg":"RS256","typ":"JWT"}')
            + "."
            + self.b64url(json.dumps({"sub": rand(12), "exp": 1900000000}).encode())
            + "."
            + rand(86, ALNUM + "-_"),
            "rsa-key": self.pem("RSA PRIVATE KEY", "MIIEowIBAAKCAQEA"),
            "openssh-key": self.pem("OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAA"),
            "ec-key": self.pem("EC PRIVATE KEY", "MHcCAQEEI"),
            # last, so that the draws above stay as they were: an MLflow tracking token on Databricks
            "databricks": "dapi" + rand(32, "0123456789abcdef"),
            # an STS session token (AWS_SESSION_TOKEN), found by its fixed Base64 prefix
            "aws-session-token": "IQoJb3JpZ2luX2VjE" + rand(340, ALNUM + "+/") + "==",
        }
