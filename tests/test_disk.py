"""Disk probes: path:, command: (df -P output) and prometheus: (node_exporter), and --disk/--min-free."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from pipeline_step.cli import integration_options
from pipeline_step.cli.parser import Parser
from pipeline_step.errors import ExitCode, UsageError
from pipeline_step.integrations.disk import (
    CommandProbe,
    DiskProbeError,
    DiskUsage,
    PathProbe,
    PrometheusProbe,
    bytes_freed,
    is_low,
    parse_df_output,
    parse_probe,
)
from pipeline_step.support.redact import register_secret
from pipeline_step.support.units import FreeSpaceThreshold
from tests.support.localhttp import LocalServer, send
from tests.support.registry import free_port

GIB = 1024**3

# Trimmed from a real node_exporter 1.7 /metrics page: several filesystems, HELP/TYPE lines, other metrics.
EXPOSITION = """\
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 8
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 2.147483648e+10
node_filesystem_avail_bytes{device="/dev/sda15",fstype="vfat",mountpoint="/boot/efi"} 1.16342784e+08
node_filesystem_avail_bytes{device="/dev/sdb1",fstype="xfs",mountpoint="/var/lib/registry"} 5.36870912e+09
node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 8.23132160e+08
node_filesystem_avail_bytes{device="/dev/sdc1",fstype="ext4",mountpoint="/srv/with \\"quotes\\""} 1024
# HELP node_filesystem_device_error Whether an error occurred while getting statistics for the given device.
# TYPE node_filesystem_device_error gauge
node_filesystem_device_error{device="/dev/sda1",fstype="ext4",mountpoint="/"} 0
# HELP node_filesystem_free_bytes Filesystem free space in bytes.
# TYPE node_filesystem_free_bytes gauge
node_filesystem_free_bytes{device="/dev/sdb1",fstype="xfs",mountpoint="/var/lib/registry"} 6.0e+09
# HELP node_filesystem_size_bytes Filesystem size in bytes.
# TYPE node_filesystem_size_bytes gauge
node_filesystem_size_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 6.7108864e+10
node_filesystem_size_bytes{device="/dev/sda15",fstype="vfat",mountpoint="/boot/efi"} 1.09422592e+08
node_filesystem_size_bytes{device="/dev/sdb1",fstype="xfs",mountpoint="/var/lib/registry"} 1.073741824e+11
node_filesystem_size_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 8.23132160e+08
node_filesystem_size_bytes{device="/dev/sdc1",fstype="ext4",mountpoint="/srv/with \\"quotes\\""} 2048
"""

SINGLE = """\
node_filesystem_avail_bytes{device="/dev/sdb1",fstype="xfs",mountpoint="/var/lib/registry"} 5.36870912e+09
node_filesystem_size_bytes{device="/dev/sdb1",fstype="xfs",mountpoint="/var/lib/registry"} 1.073741824e+11
"""

OLD_NAMES = """\
node_filesystem_avail{device="/dev/sdb1",fstype="xfs",mountpoint="/var/lib/registry"} 5.36870912e+09
node_filesystem_size{device="/dev/sdb1",fstype="xfs",mountpoint="/var/lib/registry"} 1.073741824e+11
"""


@dataclass
class MetricsServer(LocalServer):
    body: str = EXPOSITION
    status: int = 200
    paths: list[str] = field(default_factory=list)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        self.paths.append(handler.path)
        send(handler, self.status, "text/plain; version=0.0.4; charset=utf-8", self.body.encode())

    @property
    def metrics_url(self) -> str:
        return self.url + "/metrics"


@pytest.fixture
def metrics() -> Iterator[MetricsServer]:
    with MetricsServer() as server:
        yield server


# --- path: --------------------------------------------------------------------------------------------------------


def test_path_probe_matches_statvfs(tmp_path: Path) -> None:
    usage = parse_probe(f"path:{tmp_path}").measure()
    stats = os.statvfs(tmp_path)
    assert usage.total_bytes == stats.f_blocks * stats.f_frsize
    assert abs(usage.free_bytes - stats.f_bavail * stats.f_frsize) < 64 * 1024 * 1024  # others write meanwhile
    assert usage.source == f"path:{tmp_path}"
    assert 0 < usage.free_fraction <= 1


def test_path_probe_on_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DiskProbeError) as caught:
        PathProbe(tmp_path / "missing").measure()
    assert "No such file or directory" in str(caught.value)
    assert caught.value.exit_code == ExitCode.REGISTRY


# --- command: -----------------------------------------------------------------------------------------------------

HUNDRED_GIB, TEN_GIB = 100 * GIB, 10 * GIB
DF_OUTPUTS: dict[str, tuple[str, int, int]] = {  # output, total bytes, free bytes
    "df -PB1": (
        "Filesystem         1-blocks        Used   Available Capacity Mounted on\n"
        "/dev/sdb1      107374182400 96636764160 10737418240      90% /var/lib/registry\n",
        HUNDRED_GIB,
        TEN_GIB,
    ),
    "df -B1": (
        "Filesystem        1B-blocks        Used   Available Use% Mounted on\n"
        "/dev/sdb1      107374182400 96636764160 10737418240  90% /var/lib/registry\n",
        HUNDRED_GIB,
        TEN_GIB,
    ),
    "df -Pk": (
        "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
        "/dev/sdb1        104857600 94371840  10485760      90% /var/lib/registry\n",
        HUNDRED_GIB,
        TEN_GIB,
    ),
    "df -k": (
        "Filesystem     1K-blocks     Used Available Use% Mounted on\n"
        "/dev/sdb1      104857600 94371840  10485760  90% /var/lib/registry\n",
        HUNDRED_GIB,
        TEN_GIB,
    ),
    "macOS df -P": (
        "Filesystem 512-blocks      Used Available Capacity  Mounted on\n"
        "/dev/disk3s5 209715200 188743680 20971520    90%    /System/Volumes/Data\n",
        HUNDRED_GIB,
        TEN_GIB,
    ),
    "df -P --block-size=1M": (
        "Filesystem     1M-blocks  Used Available Capacity Mounted on\n"
        "/dev/sdb1         102400 92160     10240      90% /var/lib/registry\n",
        HUNDRED_GIB,
        TEN_GIB,
    ),
    "df -P --block-size=1MB": (
        "Filesystem     1MB-blocks   Used Available Capacity Mounted on\n"
        "/dev/sdb1          107374  96636     10737      90% /var/lib/registry\n",
        107374 * 1000**2,
        10737 * 1000**2,
    ),
    "spaces in names": (
        "Filesystem          1024-blocks     Used Available Capacity Mounted on\n"
        "//nas/registry data   104857600 94371840  10485760      90% /mnt/registry data\n",
        HUNDRED_GIB,
        TEN_GIB,
    ),
}


@pytest.mark.parametrize("variant", DF_OUTPUTS)
def test_df_output_variants(variant: str) -> None:
    text, total, free = DF_OUTPUTS[variant]
    usage = parse_df_output(text, source="test")
    assert (usage.total_bytes, usage.free_bytes) == (total, free)


def test_command_probe_runs_through_the_shell() -> None:
    text = DF_OUTPUTS["df -PB1"][0]
    usage = parse_probe(f"command:printf '%s' {shlex.quote(text)}").measure()
    assert (usage.total_bytes, usage.free_bytes) == (107374182400, 10737418240)
    assert usage.source.startswith("command:printf")


def test_command_probe_with_the_real_df(tmp_path: Path) -> None:
    usage = CommandProbe(f"df -PB1 {shlex.quote(str(tmp_path))}").measure()
    stats = os.statvfs(tmp_path)
    assert usage.total_bytes == stats.f_blocks * stats.f_frsize
    assert abs(usage.free_bytes - stats.f_bavail * stats.f_frsize) < 64 * 1024 * 1024


def test_command_probe_failure_quotes_stderr() -> None:
    probe = parse_probe("command:echo 'ssh: connect to host reg port 22: Connection refused' >&2; exit 255")
    with pytest.raises(DiskProbeError) as caught:
        probe.measure()
    message = str(caught.value)
    assert "exited with status 255" in message
    assert "ssh: connect to host reg port 22: Connection refused" in message


def test_command_probe_timeout_kills_the_whole_group() -> None:
    started = time.monotonic()
    with pytest.raises(DiskProbeError) as caught:
        CommandProbe("sleep 30 & sleep 30; wait", timeout=0.3).measure()
    assert time.monotonic() - started < 10
    assert "did not finish within 0.3s" in str(caught.value)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("", "printed nothing"),
        ("Filesystem  Size  Used Avail Use% Mounted on\n/dev/sdb1  100G  90G  10G  90% /var/lib/registry\n", "df -h"),
        ("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/a 10 5 5 50% /\n/dev/b 10 5 5 50% /x\n", "2"),
        ("hello world\n", "block size"),
        ("Filesystem 1024-blocks Used Available Capacity Mounted on\nnot a row\n", "cannot read"),
    ],
)
def test_unusable_df_output(output: str, message: str) -> None:
    with pytest.raises(DiskProbeError) as caught:
        parse_probe(f"command:printf '%s' {shlex.quote(output)}").measure()
    assert message in str(caught.value)


def test_command_probe_messages_are_redacted() -> None:
    register_secret("CANARY-DISK-PASSWORD")
    with pytest.raises(DiskProbeError) as caught:
        parse_probe("command:sshpass -p CANARY-DISK-PASSWORD ssh reg df -P / 2>/dev/null; exit 3").measure()
    assert "CANARY-DISK-PASSWORD" not in str(caught.value)


# --- prometheus: --------------------------------------------------------------------------------------------------


def test_prometheus_probe_picks_the_mountpoint(metrics: MetricsServer) -> None:
    usage = parse_probe(f"prometheus:{metrics.metrics_url}#mountpoint=/var/lib/registry").measure()
    assert (usage.total_bytes, usage.free_bytes) == (107374182400, 5368709120)
    assert usage.source == f"prometheus:{metrics.metrics_url} mountpoint=/var/lib/registry"
    assert metrics.paths == ["/metrics"]  # the selector is never sent


def test_prometheus_bare_path_selector_and_several_labels(metrics: MetricsServer) -> None:
    assert parse_probe(f"prometheus:{metrics.metrics_url}#/var/lib/registry").measure().free_bytes == 5368709120
    usage = parse_probe(f"prometheus:{metrics.metrics_url}#mountpoint=/&fstype=ext4").measure()
    assert (usage.total_bytes, usage.free_bytes) == (67108864000, 21474836480)


def test_prometheus_escaped_label_values(metrics: MetricsServer) -> None:
    usage = parse_probe(f"prometheus:{metrics.metrics_url}#mountpoint=/srv/with%20%22quotes%22").measure()
    assert (usage.total_bytes, usage.free_bytes) == (2048, 1024)


def test_prometheus_without_selector_lists_the_mountpoints(metrics: MetricsServer) -> None:
    with pytest.raises(DiskProbeError) as caught:
        parse_probe(f"prometheus:{metrics.metrics_url}").measure()
    message = str(caught.value)
    assert "5 filesystems" in message
    for mount in ("/", "/boot/efi", "/var/lib/registry", "/run"):
        assert mount in message
    assert "#mountpoint=" in message


def test_prometheus_unknown_mountpoint_lists_the_others(metrics: MetricsServer) -> None:
    with pytest.raises(DiskProbeError) as caught:
        parse_probe(f"prometheus:{metrics.metrics_url}#mountpoint=/data").measure()
    assert "no filesystem matching mountpoint=/data" in str(caught.value)
    assert "/var/lib/registry" in str(caught.value)


@pytest.mark.parametrize("body", [SINGLE, OLD_NAMES])
def test_prometheus_single_filesystem_needs_no_selector(body: str) -> None:
    with MetricsServer(body=body) as server:
        usage = parse_probe(f"prometheus:{server.metrics_url}").measure()
    assert (usage.total_bytes, usage.free_bytes) == (107374182400, 5368709120)


def test_prometheus_without_filesystem_metrics() -> None:
    with MetricsServer(body="go_goroutines 8\n") as server, pytest.raises(DiskProbeError) as caught:
        parse_probe(f"prometheus:{server.metrics_url}").measure()
    assert "node_filesystem_avail_bytes" in str(caught.value)


def test_prometheus_http_error() -> None:
    with MetricsServer(status=404, body="404 page not found") as server, pytest.raises(DiskProbeError) as caught:
        parse_probe(f"prometheus:{server.metrics_url}#/").measure()
    assert "HTTP 404" in str(caught.value)


def test_prometheus_unreachable_hides_credentials() -> None:
    probe = parse_probe(f"prometheus:http://metrics:CANARY-METRICS-PW@127.0.0.1:{free_port()}/metrics#/")
    assert isinstance(probe, PrometheusProbe)
    with pytest.raises(DiskProbeError) as caught:
        probe.measure()
    assert "cannot read node_exporter metrics" in str(caught.value)
    assert "CANARY-METRICS-PW" not in str(caught.value) and "CANARY-METRICS-PW" not in str(probe)


# --- specs, thresholds and flags --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    ["", "path", "path:", "/var/lib/registry", "nfs:/srv", "command:  ", "prometheus:reg:9100", "prometheus:ftp://x/"],
)
def test_bad_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_probe(spec)
    assert "--disk" in str(caught.value) and "path:DIR" in str(caught.value)


def test_spec_kinds() -> None:
    assert isinstance(parse_probe("path:~/registry"), PathProbe)
    assert str(parse_probe("path:~/registry")) == f"path:{Path.home() / 'registry'}"
    assert isinstance(parse_probe("command:df -PB1 /"), CommandProbe)
    probe = parse_probe("prometheus:http://reg:9100#mountpoint=/var/lib/registry")
    assert isinstance(probe, PrometheusProbe)
    assert probe.url == "http://reg:9100/metrics"
    assert probe.selector == (("mountpoint", "/var/lib/registry"),)


@pytest.mark.parametrize(
    ("free", "threshold", "low"),
    [
        (9 * GIB, "10%", True),
        (10 * GIB, "10%", False),
        (11 * GIB, "10%", False),
        (4 * GIB, "5GiB", True),
        (5 * GIB, "5GiB", False),
    ],
)
def test_is_low(free: int, threshold: str, low: bool) -> None:
    usage = DiskUsage(total_bytes=100 * GIB, free_bytes=free, source="test")
    assert is_low(usage, FreeSpaceThreshold.parse(threshold)) is low


def test_usage_text_and_bytes_freed() -> None:
    before = DiskUsage(100 * GIB, 5 * GIB, "path:/var/lib/registry")
    after = DiskUsage(100 * GIB, 30 * GIB, "path:/var/lib/registry")
    assert str(before) == "5.0 GiB free of 100.0 GiB (5%) on path:/var/lib/registry"
    assert bytes_freed(before, after) == 25 * GIB
    assert after.used_bytes == 70 * GIB


def _disk_parser() -> Parser:
    parser = Parser(prog="test")
    integration_options.add_disk_options(parser)
    return parser


def test_disk_flags(tmp_path: Path) -> None:
    args = _disk_parser().parse_args(["--disk", f"path:{tmp_path}", "--min-free", "5GiB"])
    probe = integration_options.disk_from_args(args)
    assert isinstance(probe, PathProbe) and probe.path == tmp_path
    assert integration_options.min_free_from_args(args) == FreeSpaceThreshold(size=5 * GIB)
    defaults = _disk_parser().parse_args([])
    assert integration_options.disk_from_args(defaults) is None
    assert integration_options.min_free_from_args(defaults) == FreeSpaceThreshold(fraction=0.10)


@pytest.mark.parametrize("value", ["150%", "lots", "5 parsecs"])
def test_bad_min_free_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError) as caught:
        _disk_parser().parse_args(["--min-free", value])
    assert "--min-free" in str(caught.value)
