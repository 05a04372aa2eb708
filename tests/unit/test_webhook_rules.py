"""Webhook rules without servers: addresses, filters, bodies, schedule, secrets, signatures, settings."""

from __future__ import annotations

import ipaddress
import random
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError
from standardwebhooks import Webhook

from platograph.api.webhooks import SubscriptionIn
from services.webhooks.adapters.secrets import SecretBox
from services.webhooks.adapters.sender import signature_headers
from services.webhooks.domain import messages, safety
from services.webhooks.settings import WebhookSettings

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


REFUSED = [
    # IPv4: loopback in every spelling, private, shared, link-local (cloud metadata), this-network, reserved
    "http://127.0.0.1/x", "http://localhost:8080/", "http://0x7f000001/", "http://2130706433/", "http://127.1/",
    "http://10.0.0.5/", "http://192.168.1.1/", "http://172.16.0.1/", "http://169.254.169.254/latest",
    "http://0.0.0.0/", "http://100.64.0.1/", "http://192.0.0.1/", "http://198.18.0.1/", "http://240.0.0.1/",
    "http://224.0.0.1/", "http://255.255.255.255/",
    # IPv6: loopback, unspecified, link-local, site-local, unique-local, multicast, documentation
    "http://[::1]/", "http://[::]/", "http://[fe80::1]/", "http://[fec0::1]/", "http://[fd00::1]/",
    "http://[fc00::1]/", "http://[ff02::1]/", "http://[2001:db8::1]/",
    # IPv4 inside IPv6: mapped, compatible, NAT64 (well-known and local-use), 6to4, Teredo
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/", "http://[::127.0.0.1]:8002/",
    "http://[::a00:1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/", "http://[64:ff9b:1::808:808]/",
    "http://[2002:7f00:1::]:8003/", "http://[2002:a9fe:a9fe::1]/", "http://[2002:c0a8:101::]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
]  # fmt: skip
ACCEPTED = [
    "https://93.184.215.14/", "http://93.184.215.14/", "http://8.8.8.8:8080/hook", "https://1.1.1.1:65535/",
    "https://[2606:4700:4700::1111]/", "http://[::ffff:8.8.8.8]/", "http://[64:ff9b::808:808]/",
    "http://[2002:808:808::1]/",
]  # fmt: skip


@pytest.mark.parametrize("url", REFUSED)
def test_addresses_that_are_not_globally_routable_are_refused_in_every_form(url: str) -> None:
    with pytest.raises(safety.UnsafeEndpoint, match="PLATOGRAPH_WEBHOOK_ALLOWLIST"):
        safety.resolve(url, [])


@pytest.mark.parametrize("url", ACCEPTED)
def test_public_addresses_on_ordinary_ports_are_accepted_in_every_form(url: str) -> None:
    assert safety.resolve(url, []).address is not None


@pytest.mark.parametrize("port", [1, 22, 25, 53, 79, 81, 110, 444, 1023])
def test_ports_below_1024_other_than_80_and_443_are_refused_unless_allowlisted(port: int) -> None:
    with pytest.raises(safety.UnsafeEndpoint, match="PLATOGRAPH_WEBHOOK_PORTS"):
        safety.resolve(f"http://93.184.215.14:{port}/", [])
    assert safety.resolve(f"http://93.184.215.14:{port}/", [], ports={port}).port == port


def test_port_zero_is_refused_even_when_allowlisted() -> None:
    with pytest.raises(safety.UnsafeEndpoint, match="port 0"):
        safety.resolve("http://93.184.215.14:0/", [], ports={0})


def test_a_name_is_checked_for_what_it_resolves_to_now_not_when_it_was_registered() -> None:
    answers = iter([["93.184.215.14"], ["93.184.215.14", "10.0.0.7"], ["fd12::7"]])
    lookup = lambda host, port: next(answers)  # noqa: E731 - each call is a later lookup of the same name
    assert str(safety.resolve("https://hooks.example.org/", [], lookup=lookup).address) == "93.184.215.14"
    with pytest.raises(safety.UnsafeEndpoint, match="10.0.0.7"):  # one private answer among public ones
        safety.resolve("https://hooks.example.org/", [], lookup=lookup)
    with pytest.raises(safety.UnsafeEndpoint, match="fd12::7"):
        safety.resolve("https://hooks.example.org/", [], lookup=lookup)


def test_the_allowlist_lets_named_networks_through_and_nothing_else() -> None:
    target = safety.resolve("http://127.0.0.1:9000/hook", LOOPBACK)
    assert (str(target.address), target.port, target.host) == ("127.0.0.1", 9000, "127.0.0.1")
    mapped = safety.resolve("http://[::ffff:127.0.0.1]/", LOOPBACK).address
    assert isinstance(mapped, ipaddress.IPv6Address) and str(mapped.ipv4_mapped) == "127.0.0.1"
    with pytest.raises(safety.UnsafeEndpoint):
        safety.resolve("http://10.0.0.5/", LOOPBACK)
    assert safety.resolve("https://93.184.215.14/", []).port == 443  # a public address needs no allowlist


@pytest.mark.parametrize(
    ("url", "message"),
    [("ftp://example.org/", "http"), ("http:///nohost", "no host"), ("http://u:p@127.0.0.1/", "credentials"),
     ("http://127.0.0.1:99999/", "port"), ("http://no-such-host.invalid/", "cannot resolve")],
)  # fmt: skip
def test_malformed_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(safety.UnsafeEndpoint, match=message):
        safety.resolve(url, LOOPBACK)


def test_filters_on_event_type_entity_type_and_score() -> None:
    sub = {"event_types": ["candidate.proposed"], "entity_types": ["claim"], "min_score": 0.8}
    ids = ["claim:a", "paper:b"]
    assert messages.matches("candidate.proposed", ids, 0.85, sub)
    assert not messages.matches("candidate.proposed", ids, 0.75, sub)
    assert not messages.matches("candidate.withdrawn", ids, 0.85, sub)
    assert not messages.matches("candidate.proposed", ["paper:a", "quote:b"], 0.9, sub)
    anything = {"event_types": ["entity.merged"], "entity_types": None, "min_score": 0.8}
    assert messages.matches("entity.merged", ["quote:a", "quote:b"], None, anything)  # no score: not filtered
    thresholds = sub | {"event_types": ["threshold.changed"]}
    assert messages.matches("threshold.changed", [], None, thresholds, types=["claim", "hypothesis"])
    assert not messages.matches("threshold.changed", [], None, thresholds, types=["paper", "quote"])


def test_the_body_names_both_entities_and_carries_the_score() -> None:
    at = datetime(2026, 11, 27, tzinfo=UTC)
    payload = {"a": "claim:a", "b": "paper:b", "score": 0.8, "kind": "link", "model": "m"}
    body = messages.body("candidate.proposed", at, payload, {"claim:a": {"name": "A"}}, 0.8)
    assert body == {
        "type": "candidate.proposed",
        "timestamp": "2026-11-27T00:00:00+00:00",
        "data": {"a": {"id": "claim:a", "type": "claim", "name": "A"},
                 "b": {"id": "paper:b", "type": "paper", "name": None}, "score": 0.8, "kind": "link", "model": "m"},
    }  # fmt: skip
    merged = messages.body("entity.merged", at, {"id": "quote:x", "into": "quote:y"}, {}, None)["data"]
    assert merged == {"entity": {"id": "quote:x", "type": "quote", "name": None},
                      "into": {"id": "quote:y", "type": "quote", "name": None}}  # fmt: skip


def test_the_retry_schedule_is_followed_with_jitter_and_then_ends() -> None:
    rng = random.Random(7)
    schedule = (5.0, 300.0, 1800.0)
    delays = [messages.retry_delay(n, schedule, 0.2, rng) for n in (1, 2, 3, 4)]
    assert delays[3] is None
    for delay, planned in zip(delays[:3], schedule, strict=True):
        assert delay is not None and planned * 0.8 <= delay <= planned * 1.2
    assert messages.retry_delay(1, schedule, 0.0, rng) == 5.0


def test_secrets_are_sealed_and_the_key_can_rotate() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    secret = messages.new_secret()
    token = SecretBox(old).seal(secret)
    assert secret not in token and secret[6:] not in token
    assert SecretBox(f"{new},{old}").open(token) == secret  # a new first key still opens old tokens


def test_signatures_verify_with_the_official_package_for_each_live_secret() -> None:
    first, second = messages.new_secret(), messages.new_secret()
    body = '{"type":"candidate.proposed"}'
    headers = signature_headers("evt-1", body, [first, second])
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (first, second):
        assert Webhook(secret).verify(body, headers) == {"type": "candidate.proposed"}
    with pytest.raises(Exception, match="signature"):
        Webhook(messages.new_secret()).verify(body, headers)


def test_settings_parse_lists_and_name_a_bad_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/x")
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_ALLOWLIST", "127.0.0.0/8, 10.1.0.0/16")
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_RETRY_SCHEDULE", "1,2.5")
    settings = WebhookSettings()
    assert [str(n) for n in settings.webhook_allowlist] == ["127.0.0.0/8", "10.1.0.0/16"]
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_PORTS", "8, 25")
    assert WebhookSettings().webhook_ports == {8, 25}
    assert settings.webhook_retry_schedule == (1.0, 2.5)
    monkeypatch.setenv("PLATOGRAPH_WEBHOOK_KEY", "not-a-key")
    with pytest.raises(ValidationError, match="PLATOGRAPH_WEBHOOK_KEY"):
        WebhookSettings()


def test_subscriptions_refuse_unknown_event_types() -> None:
    with pytest.raises(ValidationError, match="unknown event types"):
        SubscriptionIn.model_validate({"url": "http://example.org/", "event_types": ["edge.added"]})
    made = SubscriptionIn.model_validate({"url": "http://example.org/"})
    assert made.event_types == ["candidate.proposed"]
