"""The adapter SDK: vendor adapters found through the ``homediag.adapters`` entry-point group.

The worked example (examples/vendor-adapter, docs/adapters.md) is installed for real with pip into
a scratch folder and found through its entry point by ``homediag`` in a subprocess; no mocks.
Refusals (an id clash with a built-in, an import error, a misnamed or non-adapter entry point, two
packages claiming one id) are tried with real distribution metadata on ``sys.path``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from homediag.adapters.devices import UnknownAdapter, registry

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "vendor-adapter"
# the console script a vendor runs (python -m homediag.cli where there is none)
SCRIPT = Path(sys.executable).with_name("homediag")
HOMEDIAG = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "homediag.cli"]
VECTORS = json.loads((ROOT / "tests" / "fixtures" / "ble" / "third-party-vectors.json").read_text())
BP_FULL = next(v["hex"] for v in VECTORS["characteristics"] if v["id"] == "nordic-bp-full")


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/vendor-adapter installed with pip (``--no-deps --target``), as a vendor would ship it."""
    source = tmp_path_factory.mktemp("src") / "vendor-adapter"
    # build from a copy: a build leaves build/ and *.egg-info behind in the source folder
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "acme_homediag" / "thermo.py").exists()
    return site


def run(*args: str, path: list[Path] = (), cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:  # type: ignore[assignment]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if path:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in path)
    return subprocess.run([*HOMEDIAG, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def write_distribution(
    site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str] | None = None, version: str = "1.0"
) -> None:
    """A real installed distribution (``*.dist-info`` with METADATA and entry_points.txt), no pip needed."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[homediag.adapters]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    )
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source)


@pytest.fixture
def on_path() -> Iterator[list[Path]]:
    """Put folders on sys.path for this process and re-read the entry points; undone after."""
    added: list[Path] = []
    before = set(sys.modules)
    yield added
    for p in added:
        sys.path.remove(str(p))
    for name in set(sys.modules) - before:
        if name.startswith(("acme_", "vendor_")):
            del sys.modules[name]
    importlib.invalidate_caches()
    registry.reload()


def activate(on_path: list[Path], *folders: Path) -> None:
    for folder in folders:
        sys.path.insert(0, str(folder))
        on_path.append(folder)
    importlib.invalidate_caches()
    registry.reload()


# -- the worked example, installed for real -----------------------------------------------------------
def test_the_installed_example_is_listed_beside_the_built_in_adapters(example_site: Path):
    result = run("adapters", "list", path=[example_site])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    [acme] = [line for line in lines if line.startswith("acme-thermo-json ")]
    assert "ACME cloud thermometer JSON" in acme and "[reads: body-temperature]" in acme
    assert "(from homediag-example-vendor 0.1.0)" in acme
    assert any(line.startswith("ble-blood-pressure ") and "(from" not in line for line in lines)
    assert "REFUSED" not in result.stdout and result.stderr == ""


def test_without_the_package_the_adapter_is_unknown(example_site: Path):
    if any(
        d.metadata["Name"] == "homediag-example-vendor"
        for d in importlib.metadata.distributions(path=[p for p in sys.path if "site-packages" in p])
    ):
        pytest.skip("the example is installed in this environment (pip install -e examples/vendor-adapter)")
    listed = run("adapters", "list")
    assert listed.returncode == 0 and "acme-thermo-json" not in listed.stdout
    tested = run("adapters", "test", "acme-thermo-json", str(EXAMPLE / "cases"))
    assert tested.returncode == 2
    assert "no adapter 'acme-thermo-json'" in tested.stderr


def test_the_kit_passes_the_examples_cases(example_site: Path):
    result = run("adapters", "test", "acme-thermo-json", str(EXAMPLE / "cases"), path=[example_site])
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert (
        "adapter acme-thermo-json (from homediag-example-vendor 0.1.0, "
        "entry point acme-thermo-json = acme_homediag.thermo:AcmeThermoJsonAdapter)" in out
    )
    cases = sorted(p.name[: -len(".expected.json")] for p in (EXAMPLE / "cases").glob("*.expected.json"))
    assert len(cases) >= 8
    for name in cases:
        assert f"PASS  {name} " in out
    assert "PASS  calibration" in out and "discarded" in out
    assert "refused by the adapter: acme-thermo-json: field 'celsius': missing" in out
    assert "refused by the profile rules: body-temperature: " in out
    assert f"all cases pass: {len(cases)} of {len(cases)} cases passed, 0 failed" in out


def test_the_kit_shows_a_vendor_what_a_broken_expectation_looks_like(example_site: Path, tmp_path: Path):
    cases = tmp_path / "cases"
    shutil.copytree(EXAMPLE / "cases", cases)
    golden = cases / "morning.expected.json"
    golden.write_text(golden.read_text().replace('"value": 37.2,', '"value": 37.3,'))
    (cases / "evening.json").write_text('{"celsius": "36.6", "taken": "2026-11-20T20:00:00+01:00"}')
    result = run("adapters", "test", "acme-thermo-json", str(cases), path=[example_site])
    assert result.returncode == 1
    assert "entry[0].resource.valueQuantity.value: expected 37.3, got 37.2" in result.stdout
    assert "no evening.expected.json" in result.stdout
    updated = run("adapters", "test", "acme-thermo-json", str(cases), "--update", path=[example_site])
    assert updated.returncode == 0, updated.stdout
    assert (
        "WROTE evening" in updated.stdout
        and "entry[0] Body temperature at 2026-11-20T20:00:00+01:00: 36.6 Cel" in updated.stdout
    )
    assert golden.read_text() == (EXAMPLE / "cases" / "morning.expected.json").read_text()


def test_a_vendor_adapter_goes_through_ingest_like_a_built_in_one(
    example_site: Path, on_path: list[Path], client, tokens, pilot
):
    activate(on_path, example_site)
    assert registry.source("acme-thermo-json").distribution == "homediag-example-vendor 0.1.0"
    patient = pilot.enrol("0101904321")
    envelope = {
        "adapter": "acme-thermo-json",
        "data": {"celsius": "38.4", "taken": "2026-11-20T08:30:00+01:00"},
        "device": {"manufacturer": "ACME Medical", "model": "Thermo-1", "serial": "SYN-ACME-00001"},
        "patient": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101904321"},
        "received_at": "2026-11-20T08:31:00+01:00",
    }
    created = client.post("/ingest", json=envelope, headers=tokens.auth("gateway"))
    assert created.status_code == 201, created.text
    [obs] = created.json()["observations"]
    assert obs["code"] == "150364"
    pilot.consent(patient)
    found = client.get(f"/fhir/Observation/{obs['id']}", headers=tokens.auth("clinician")).json()
    assert found["valueQuantity"]["value"] == 38.4 and found["subject"]["reference"] == f"Patient/{patient}"

    refused = client.post("/ingest", json={**envelope, "data": {"celsius": "warm"}}, headers=tokens.auth("gateway"))
    assert refused.status_code == 422
    [issue] = refused.json()["issues"]["issue"]
    assert issue["diagnostics"] == "acme-thermo-json: field 'celsius': not a decimal number: 'warm'"
    assert issue["expression"] == ["envelope.data"]
    discarded = client.post(
        "/ingest", json={**envelope, "data": {"celsius": "37.0", "mode": "calibration"}}, headers=tokens.auth("gateway")
    )
    assert discarded.status_code == 200 and discarded.json()["outcome"] == "discarded"


def test_the_sandbox_gives_the_vendor_what_the_kit_expects(example_site: Path, on_path: list[Path], client, runtime):
    from homediag.users import create_user

    activate(on_path, example_site)
    with runtime.sessions.begin() as session:
        token = create_user(session, name="ACME developer", role="vendor", organisation="ACME Medical")[1]
    vendor = {"Authorization": f"Bearer {token}"}
    payload = json.loads((EXAMPLE / "cases" / "morning.json").read_text())
    answer = client.post("/sandbox/acme-thermo-json", json={"data": payload}, headers=vendor)
    assert answer.status_code == 200, answer.text
    assert answer.json()["verdict"] == "accepted"
    assert answer.json()["bundle"] == json.loads((EXAMPLE / "cases" / "morning.expected.json").read_text())
    refused = client.post("/sandbox/acme-thermo-json", json={"data": {"celsius": "warm"}}, headers=vendor)
    assert refused.status_code == 422
    assert (
        refused.json()["issue"][0]["diagnostics"] == "acme-thermo-json: field 'celsius': not a decimal number: 'warm'"
    )


# -- refusals: a vendor package never breaks the platform --------------------------------------------------
@pytest.fixture
def troubled_site(tmp_path: Path) -> Path:
    site = tmp_path / "troubled"
    write_distribution(
        site,
        "vendor-clash",
        {"ble-blood-pressure": "vendor_clash:Cuff"},
        {
            "vendor_clash": (
                "class Cuff:\n"
                "    id = 'ble-blood-pressure'\n"
                "    description = 'a copy'\n"
                "    input_kind = 'bytes'\n"
                "    reads = ('blood-pressure',)\n"
                "\n"
                "    def decode(self, payload):\n"
                "        return []\n"
            )
        },
    )
    write_distribution(
        site,
        "vendor-broken",
        {"acme-broken": "vendor_broken:Adapter"},
        {"vendor_broken": "import a_module_that_is_not_installed\n"},
    )
    write_distribution(site, "vendor-missing", {"acme-missing": "vendor_nowhere:Adapter"})
    write_distribution(
        site,
        "vendor-misnamed",
        {"acme-misnamed": "vendor_misnamed:Scale"},
        {
            "vendor_misnamed": (
                "class Scale:\n"
                "    id = 'acme-scale'\n"
                "    description = 'a scale'\n"
                "    input_kind = 'bytes'\n"
                "    reads = ('body-weight',)\n"
                "\n"
                "    def decode(self, payload):\n"
                "        return []\n"
            )
        },
    )
    write_distribution(site, "vendor-not-adapter", {"acme-function": "json:dumps"})
    write_distribution(
        site,
        "vendor-bad-kind",
        {"acme-xml": "vendor_xml:ADAPTER"},
        {
            "vendor_xml": (
                "class X:\n"
                "    id = 'acme-xml'\n"
                "    description = 'reads XML'\n"
                "    input_kind = 'xml'\n"
                "    reads = ('body-weight',)\n"
                "\n"
                "    def decode(self, payload):\n"
                "        return []\n"
                "\n"
                "ADAPTER = X()\n"
            )
        },
    )
    write_distribution(
        site,
        "vendor-failing-init",
        {"acme-init": "vendor_init:Adapter"},
        {
            "vendor_init": (
                "class Adapter:\n"
                "    id = 'acme-init'\n"
                "    description = 'x'\n"
                "    input_kind = 'bytes'\n"
                "    reads = ('body-weight',)\n"
                "\n"
                "    def __init__(self):\n"
                "        raise RuntimeError('licence file not found')\n"
                "\n"
                "    def decode(self, payload):\n"
                "        return []\n"
            )
        },
    )
    return site


REFUSALS = {
    "ble-blood-pressure": "is a built-in adapter's id; a vendor adapter cannot replace a built-in one",
    "acme-broken": (
        "cannot load vendor_broken:Adapter: ModuleNotFoundError: No module named 'a_module_that_is_not_installed'"
    ),
    "acme-missing": "cannot load vendor_nowhere:Adapter: ModuleNotFoundError",
    "acme-misnamed": "the entry point is named 'acme-misnamed' but the adapter's id is 'acme-scale'",
    "acme-function": "json:dumps is not an adapter: its id must be a string",
    "acme-xml": "its input_kind must be one of bytes, json, not 'xml'",
    "acme-init": "cannot load vendor_init:Adapter: RuntimeError: licence file not found",
}


def test_refused_entry_points_are_listed_with_the_reason_and_the_rest_works(example_site: Path, troubled_site: Path):
    listed = run("adapters", "list", path=[troubled_site, example_site])
    assert listed.returncode == 0, listed.stderr
    for name, reason in REFUSALS.items():
        [line] = [line for line in listed.stdout.splitlines() if line.startswith(f"{name} ") and "REFUSED" in line]
        assert reason in line, line
        assert "WARNING" not in line
        assert f"vendor adapter '{name}'" in listed.stderr  # logged
    assert "REFUSED (from vendor-clash 1.0, ble-blood-pressure = vendor_clash:Cuff)" in listed.stdout
    [builtin] = [
        line for line in listed.stdout.splitlines() if line.startswith("ble-blood-pressure ") and "REFUSED" not in line
    ]
    assert "0x2A35" in builtin and "(from" not in builtin
    assert any(
        line.startswith("acme-thermo-json ") and "homediag-example-vendor" in line
        for line in listed.stdout.splitlines()
    )

    converted = run("adapters", "convert", "ble-blood-pressure", "--hex", BP_FULL, path=[troubled_site, example_site])
    assert converted.returncode == 0, converted.stderr
    assert json.loads(converted.stdout)["resourceType"] == "Bundle"  # the built-in one, not the clashing copy
    kit = run("adapters", "test", "acme-thermo-json", str(EXAMPLE / "cases"), path=[troubled_site, example_site])
    assert kit.returncode == 0, kit.stdout
    refused = run("adapters", "test", "acme-broken", str(EXAMPLE / "cases"), path=[troubled_site])
    assert refused.returncode == 2
    assert (
        "adapter 'acme-broken' from vendor-broken 1.0 was refused: cannot load vendor_broken:Adapter" in refused.stderr
    )


def test_refusals_in_process(troubled_site: Path, on_path: list[Path]):
    activate(on_path, troubled_site)
    refused = {r.name: r for r in registry.refused_adapters()}
    assert set(refused) == set(REFUSALS)
    for name, reason in REFUSALS.items():
        assert reason in refused[name].reason
    assert registry.get("ble-blood-pressure").description.startswith("Bluetooth Blood Pressure")
    assert registry.source("ble-blood-pressure").builtin
    with pytest.raises(UnknownAdapter) as info:
        registry.get("acme-init")
    assert info.value.refused is refused["acme-init"]
    assert "licence file not found" in str(info.value)
    assert "acme-init" not in [a.id for a in registry.all_adapters()]


def test_two_packages_claiming_one_id_are_both_refused(example_site: Path, tmp_path: Path, on_path: list[Path]):
    write_distribution(
        tmp_path,
        "vendor-copycat",
        {"acme-thermo-json": "vendor_copycat:ADAPTER"},
        {
            "vendor_copycat": (
                "from acme_homediag.thermo import AcmeThermoJsonAdapter\nADAPTER = AcmeThermoJsonAdapter()\n"
            )
        },
    )
    activate(on_path, example_site, tmp_path)
    refused = [r for r in registry.refused_adapters() if r.name == "acme-thermo-json"]
    assert len(refused) == 2
    assert {r.distribution for r in refused} == {"homediag-example-vendor 0.1.0", "vendor-copycat 1.0"}
    assert all("is claimed by" in r.reason for r in refused)
    with pytest.raises(UnknownAdapter):
        registry.get("acme-thermo-json")


def test_an_entry_point_may_name_an_instance(tmp_path: Path, on_path: list[Path]):
    module = (
        "class Scale:\n"
        "    description = 'ACME scale'\n"
        "    input_kind = 'bytes'\n"
        "    reads = ('body-weight',)\n"
        "\n"
        "    def __init__(self, id):\n"
        "        self.id = id\n"
        "\n"
        "    def decode(self, payload):\n"
        "        return []\n"
        "\n"
        "SCALE = Scale('acme-scale')\n"
    )
    write_distribution(
        tmp_path, "vendor-instance", {"acme-scale": "vendor_instance:SCALE"}, {"vendor_instance": module}
    )
    activate(on_path, tmp_path)
    adapter = registry.get("acme-scale")
    assert adapter.description == "ACME scale" and not registry.source("acme-scale").builtin
    assert registry.refused_adapters() == []


def test_the_registry_keeps_its_public_functions():
    from homediag.adapters.devices import all_adapters, get

    assert get("ble-blood-pressure") in all_adapters()
    ids = [a.id for a in all_adapters()]
    assert ids == sorted(ids)
    with pytest.raises(UnknownAdapter, match="no adapter 'nope'; known adapters: .*ble-blood-pressure"):
        get("nope")
    assert registry.ENTRY_POINT_GROUP == "homediag.adapters"
