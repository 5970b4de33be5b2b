"""Alertmanager notifications (webhook payload version 4): auth, label and annotation
matching, one run per alert and status, and the ``incident`` variables."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from opsflow.spec.template import FIELDS
from opsflow.triggers import incident
from opsflow.triggers.ingress import BodyInvalid, NotAuthenticated, Skip, Start

PAYLOAD = Path(__file__).parent / "payloads" / "alertmanager_group.json"
SECRET = "am-secret"
SPEC: dict[str, Any] = {
    "type": "incident",
    "match": {"alertname": "HighRequestLatency|CheckoutSlow", "service": "checkout.*"},
}


def body(**changes: Any) -> bytes:
    data = json.loads(PAYLOAD.read_text())
    data.update(changes)
    return json.dumps(data).encode()


def read(spec: dict[str, Any], raw: bytes) -> list[Start | Skip]:
    return incident.AlertmanagerSource().read(spec, {}, raw).items


def test_bearer_and_basic_auth_with_the_secret_are_accepted() -> None:
    source = incident.AlertmanagerSource()
    assert source.authenticate({}, SECRET, {"authorization": f"Bearer {SECRET}"})
    basic = base64.b64encode(f"alertmanager:{SECRET}".encode()).decode()
    assert source.authenticate({}, SECRET, {"authorization": f"Basic {basic}"})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "must carry the trigger's secret"),
        ({"authorization": "Bearer wrong"}, "not this trigger's secret"),
        ({"authorization": "Basic !!!"}, "not base64"),
        ({"authorization": "Token am-secret"}, "must read 'Bearer <secret>'"),
    ],
)
def test_anything_else_is_refused(headers: dict[str, str], message: str) -> None:
    with pytest.raises(NotAuthenticated, match=message):
        incident.AlertmanagerSource().authenticate({}, SECRET, headers)


def test_only_alerts_whose_labels_all_match_start_runs() -> None:
    items = read(SPEC, body())
    starts = [i for i in items if isinstance(i, Start)]
    skips = [i for i in items if isinstance(i, Skip)]
    assert [s.trigger["incident"]["labels"]["service"] for s in starts] == ["checkout-api"]
    assert skips[0].reason == (
        "alert HighRequestLatency (91e0aa03c4b6d218) firing: "
        "label service='search' does not match 'checkout.*'"
    )
    assert skips[1].reason == (
        "alert HighRequestLatency (0c1d2e3f4a5b6c7d) resolved: the trigger runs on [firing]"
    )


def test_patterns_match_the_whole_value() -> None:
    spec = {"type": "incident", "match": {"service": "checkout"}}
    assert not [i for i in read(spec, body()) if isinstance(i, Start)]


def test_a_missing_label_reads_as_empty() -> None:
    spec = {"type": "incident", "match": {"team": "sre"}}
    [first, *_] = read(spec, body())
    assert isinstance(first, Skip)
    assert first.reason.endswith("label team=(missing) does not match 'sre'")
    spec = {"type": "incident", "match": {"team": "sre|"}}
    assert sum(isinstance(i, Start) for i in read(spec, body())) == 2


def test_annotations_can_be_matched_too() -> None:
    spec = {"type": "incident", "annotations": {"runbook_url": "https://runbooks\\..*"}}
    starts = [i for i in read(spec, body()) if isinstance(i, Start)]
    assert [s.trigger["incident"]["fingerprint"] for s in starts] == ["5d2c4f2b9e1a7c30"]


def test_severity_is_a_label() -> None:
    spec = {"type": "incident", "match": {"severity": "critical|page"}}
    starts = [i for i in read(spec, body()) if isinstance(i, Start)]
    assert len(starts) == 2
    assert {s.trigger["incident"]["severity"] for s in starts} == {"critical"}


def test_resolved_alerts_run_when_asked_for() -> None:
    spec = {"type": "incident", "on": ["firing", "resolved"]}
    starts = [i for i in read(spec, body()) if isinstance(i, Start)]
    assert [s.trigger["incident"]["status"] for s in starts] == ["firing", "firing", "resolved"]
    resolved = starts[2].trigger["incident"]
    assert resolved["ends_at"] == "2026-11-30T14:00:00Z"


def test_the_incident_variables() -> None:
    [start, *_] = read(SPEC, body())
    assert isinstance(start, Start)
    assert start.trigger["incident"] == {
        "id": "5d2c4f2b9e1a7c30-20261130140107",
        "title": "checkout-api p99 latency above 2s",
        "status": "firing",
        "severity": "critical",
        "labels": {
            "alertname": "HighRequestLatency",
            "service": "checkout-api",
            "namespace": "shop",
            "severity": "critical",
            "instance": "10.0.3.7:8080",
        },
        "annotations": {
            "summary": "checkout-api p99 latency above 2s",
            "runbook_url": "https://runbooks.example.com/latency",
        },
        "starts_at": "2026-11-30T14:01:07.123Z",
        "ends_at": "",
        "fingerprint": "5d2c4f2b9e1a7c30",
        "source": "alertmanager",
        "generator_url": (
            "http://prometheus.monitoring.svc:9090/graph?g0.expr=histogram_quantile"
            "%280.99%2C+...%29+%3E+2&g0.tab=1"
        ),
        "external_url": "http://alertmanager.monitoring.svc:9093",
        "receiver": "opsflow",
        "group_key": '{}/{severity=~"critical|page"}:{alertname="HighRequestLatency"}',
    }


def test_a_repeat_notification_carries_the_same_keys_and_a_new_firing_a_new_one() -> None:
    first = [i.dedupe_key for i in read(SPEC, body())]
    assert first == [i.dedupe_key for i in read(SPEC, body())]
    data = json.loads(PAYLOAD.read_text())
    data["alerts"][0]["startsAt"] = "2026-11-30T15:30:00Z"  # resolved meanwhile, fired again
    again = [i.dedupe_key for i in read(SPEC, json.dumps(data).encode())]
    assert again[0] != first[0] and again[1:] == first[1:]
    assert first[0] == "5d2c4f2b9e1a7c30-20261130140107:firing"


def test_an_alert_without_a_fingerprint_gets_one_from_its_labels() -> None:
    data = json.loads(PAYLOAD.read_text())
    for alert in data["alerts"]:
        del alert["fingerprint"]
    keys = [i.dedupe_key for i in read(SPEC, json.dumps(data).encode())]
    assert len(set(keys)) == 3


def test_truncated_groups_are_said_in_the_summary() -> None:
    [start, *_] = read(SPEC, body(truncatedAlerts=7))
    assert isinstance(start, Start)
    assert "Alertmanager left 7 alerts of this group out" in start.summary


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "must be a JSON object"),
        (json.dumps({"version": "3", "alerts": []}).encode(), "payload version 3 is not read"),
        (json.dumps({"version": "4"}).encode(), "'alerts' must be a list"),
        (
            json.dumps({"version": "4", "alerts": [{"status": "pending"}]}).encode(),
            "neither firing nor resolved",
        ),
    ],
)
def test_what_is_not_a_notification_is_refused(raw: bytes, message: str) -> None:
    with pytest.raises(BodyInvalid, match=message):
        read(SPEC, raw)


def test_every_incident_variable_is_a_field_templates_may_name() -> None:
    [start, *_] = read(SPEC, body())
    assert isinstance(start, Start)
    assert set(start.trigger["incident"]) == FIELDS["incident"]


@pytest.mark.parametrize(
    "proof",
    [
        {"x-gitlab-token": SECRET},
        {"x-hub-signature-256": "sha256=" + "0" * 64},
        {"webhook-id": "m1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
    ],
)
def test_another_sources_scheme_with_the_right_secret_is_refused(proof: dict[str, str]) -> None:
    with pytest.raises(NotAuthenticated):
        incident.AlertmanagerSource().authenticate({}, SECRET, proof)
