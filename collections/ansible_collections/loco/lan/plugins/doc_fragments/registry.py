# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options every module talking to an OCI registry shares (loco_lan.oci)."""

    DOCUMENTATION = r"""
options:
  username:
    description:
      - Registry user name.
      - Defaults to the E(LOCO_REGISTRY_USERNAME) environment variable of the managed host.
    type: str
  password:
    description:
      - Password or personal access token for O(username).
      - Defaults to E(LOCO_REGISTRY_PASSWORD).
    type: str
  token:
    description:
      - A ready bearer token, sent as is instead of O(username)/O(password).
      - Defaults to E(LOCO_REGISTRY_TOKEN).
    type: str
  ca_bundle:
    description: PEM file of CA certificates for a registry with a private CA.
    type: path
  insecure_http:
    description:
      - Talk plain HTTP instead of HTTPS. Only allowed for loopback registries.
    type: bool
    default: false
  timeout:
    description: Seconds any single network operation may take before it is retried.
    type: float
    default: 30
  retries:
    description: How many times a failed network operation is retried, with backoff.
    type: int
    default: 4
"""
