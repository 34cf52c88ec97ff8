"""config/channels.yaml is checked against its JSON Schema, with every problem named by its path."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from channelhub.cli import main
from channelhub.config import ConfigError, load_config, parse_config
from channelhub.credentials import ChannelCredentials
from channelhub.platforms import channel_connector
from connectors.auth import Secret


def valid_document() -> dict:
    return {
        "locations": [{"code": "WH-1", "name": "Main", "kind": "warehouse"}],
        "channels": [
            {
                "code": "shop_a",
                "platform": "shopify",
                "conn_id": "shop_a",
                "fulfilment_location": "WH-1",
                "schedule_minutes": 5,
                "overlap_minutes": 3,
            }
        ],
    }


def test_repository_config_is_valid():
    config = load_config()
    assert config.channels, "the demo config must configure at least one channel"
    assert all(c.dag_id == f"sync_orders__{c.code}" for c in config.channels)


def test_parsed_values_and_defaults():
    channel = parse_config(valid_document()).channel("shop_a")
    assert channel.schedule == timedelta(minutes=5)
    assert channel.overlap == timedelta(minutes=3)
    assert channel.page_size == 250 and channel.batch_size == 500 and channel.enabled
    assert channel.pool == "channel__shop_a"


def test_read_timeout_is_configurable_per_channel_and_reaches_the_connector():
    document = valid_document()
    default = parse_config(document).channel("shop_a")
    assert default.read_timeout_seconds == 30.0 and default.http_timeout == (5.0, 30.0)
    document["channels"][0]["read_timeout_seconds"] = 1.5
    channel = parse_config(document).channel("shop_a")
    assert channel.http_timeout == (5.0, 1.5)
    credentials = ChannelCredentials("shop_a", "http://127.0.0.1:9", secret=Secret("shpat_config_test"))
    assert channel_connector(channel, credentials).client.timeout == (5.0, 1.5)
    document["channels"][0]["read_timeout_seconds"] = 0
    with pytest.raises(ConfigError, match="read_timeout_seconds"):
        parse_config(document)


def test_every_problem_is_reported_with_its_path():
    document = valid_document()
    document["channels"][0]["platform"] = "shopfy"
    document["channels"][0]["schedule_minutes"] = 0
    document["channels"][0]["access_token"] = "shpat_should_not_be_here"
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "test.yaml")
    problems = "\n".join(caught.value.problems)
    assert "channels[0].platform: 'shopfy' is not one of" in problems
    assert "channels[0].schedule_minutes: 0 is less than the minimum of 1" in problems
    assert "channels[0]: Additional properties are not allowed ('access_token'" in problems
    assert len(caught.value.problems) == 3


def test_the_retention_period_is_hub_wide_defaults_to_90_days_and_is_checked(tmp_path, capsys):
    assert parse_config(valid_document()).retention.personal_data_days == 90
    document = {**valid_document(), "retention": {"personal_data_days": 30}}
    assert parse_config(document).retention.personal_data_days == 30
    for bad, says in (
        ({"personal_data_days": 0}, "retention.personal_data_days: 0 is less than the minimum of 1"),
        ({"personal_data_days": "90"}, "retention.personal_data_days: '90' is not of type 'integer'"),
        ({"personal_data_days": 30.5}, "retention.personal_data_days: 30.5 is not of type 'integer'"),
        ({"keep_days": 30}, "retention: Additional properties are not allowed ('keep_days'"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config({**valid_document(), "retention": bad})
        assert [p for p in caught.value.problems if p.startswith(says)], caught.value.problems
    file = tmp_path / "channels.yaml"
    file.write_text(yaml.safe_dump({**valid_document(), "retention": {"personal_data_days": 0}}))
    assert main(["config", "check", str(file)]) == 2
    assert "retention.personal_data_days: 0 is less than the minimum of 1" in capsys.readouterr().err
    file.write_text(yaml.safe_dump(document))
    assert main(["config", "check", str(file)]) == 0
    assert "personal data of closed orders blanked after 30 days" in capsys.readouterr().out


def test_cross_references_and_duplicates():
    document = valid_document()
    document["channels"].append(dict(document["channels"][0], fulfilment_location="NOPE"))
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert any("channels[1].code: 'shop_a' is used by another channel" in p for p in caught.value.problems)
    assert any("channels[1].fulfilment_location: 'NOPE' is not one of" in p for p in caught.value.problems)


def test_cli_check_reports_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "channels.yaml"
    bad.write_text("locations: []\nchannels: [{code: X}]\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "invalid channel config" in err and "locations: [] should be non-empty" in err
    assert "channels[0]: 'platform' is a required property" in err

    broken = tmp_path / "broken.yaml"
    broken.write_text("channels: [\n")
    assert main(["config", "check", str(broken)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_cli_check_accepts_the_repository_config(capsys):
    assert main(["config", "check"]) == 0
    assert "sync_orders__" in capsys.readouterr().out


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "channels.yaml"
    path.write_bytes("locations: []\nchannels: []  # 门店\n".encode("gb18030"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems[0].startswith("not UTF-8 (byte ")
