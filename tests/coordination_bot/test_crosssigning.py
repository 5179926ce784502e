"""Cross-signing material: signatures verify, and the "only cross-signed devices" check holds."""

from __future__ import annotations

from typing import Any

from coordination_bot.crosssigning import (
    CrossSigningKeys,
    SigningKey,
    canonical_json,
    device_is_cross_signed,
    verify,
)

USER = "@azurezo-bot:azurezo.test"


def test_canonical_json_drops_signatures_and_unsigned() -> None:
    assert canonical_json({"b": 1, "a": "é", "signatures": {}, "unsigned": {}}) == '{"a":"é","b":1}'.encode()


def test_sign_and_verify() -> None:
    key = SigningKey.generate()
    obj = {"user_id": USER, "keys": {"x": "y"}}
    signature = key.sign(obj)
    assert verify(key.public, obj, signature)
    assert not verify(key.public, {**obj, "user_id": "@other:x"}, signature)
    assert not verify(SigningKey.generate().public, obj, signature)
    assert SigningKey(key.seed).public == key.public  # a seed gives back the same key


def test_seeds_roundtrip() -> None:
    keys = CrossSigningKeys.generate()
    again = CrossSigningKeys.from_json(keys.to_json())
    assert again == keys


def _query(keys: CrossSigningKeys, device: dict[str, Any]) -> dict[str, Any]:
    body = keys.upload_body(USER)
    return {
        "master_keys": {USER: body["master_key"]},
        "self_signing_keys": {USER: body["self_signing_key"]},
        "device_keys": {USER: {"DEV": device}},
    }


def test_device_cross_signed_only_with_the_chain() -> None:
    keys = CrossSigningKeys.generate()
    device = {"user_id": USER, "device_id": "DEV", "keys": {"ed25519:DEV": "abc"}, "algorithms": []}
    assert not device_is_cross_signed(_query(keys, device), USER, "DEV")  # a bare nio device
    signed = {
        **device,
        "signatures": {USER: {f"ed25519:{keys.self_signing.public}": keys.self_signing.sign(device)}},
    }
    assert device_is_cross_signed(_query(keys, signed), USER, "DEV")
    # Signed by a self-signing key the master key did not sign: refused.
    rogue = CrossSigningKeys(keys.master, SigningKey.generate(), keys.user_signing)
    forged_query = _query(keys, signed)
    forged_query["self_signing_keys"][USER] = rogue.upload_body(USER)["self_signing_key"]
    forged_query["self_signing_keys"][USER]["signatures"] = {USER: {"ed25519:x": "bad"}}
    assert not device_is_cross_signed(forged_query, USER, "DEV")
