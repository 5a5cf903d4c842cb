"""Helm for the tests and `make chart`, without a helm binary: the Helm v4 SDK from PyPI.

    helm.py lint CHART
    helm.py template CHART NAME NAMESPACE [VALUES_JSON]
    helm.py install CHART NAME NAMESPACE KUBECONFIG [VALUES_JSON] [--skip-crds]
"""

import json
import sys

import helm_python as helm


def main(argv):
    cmd, chart = argv[1], argv[2]
    if cmd == "lint":
        report = helm.lint(chart, strict=True)
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        for m in problems:
            print(f"{m.get('path')}: {m.get('error')}", file=sys.stderr)
        if problems or report.get("errors"):
            print(json.dumps(report.get("errors")), file=sys.stderr)
            return 1
        print(f"{report.get('total_charts_linted', 0)} chart(s) linted, no problems")
        return 0
    name, namespace = argv[3], argv[4]
    if cmd == "template":
        values = json.loads(argv[5]) if len(argv) > 5 else None
        rendered = helm.Chart.load(chart).render(values, name=name, namespace=namespace, is_install=True)
        for path in sorted(rendered):
            if rendered[path].strip():
                print(f"---\n# Source: {path}\n{rendered[path]}")
        return 0
    if cmd == "install":
        skip_crds = "--skip-crds" in argv
        args = [a for a in argv[5:] if a != "--skip-crds"]
        kubeconfig = args[0]
        values = json.loads(args[1]) if len(args) > 1 else None
        config = helm.Config(kubeconfig_path=kubeconfig, namespace=namespace)
        if not skip_crds:
            release = config.install(chart, name, values, namespace=namespace, create_namespace=True, timeout=120)
        else:
            # The SDK's install() has no skip_crds keyword (pinned 0.2.2), but its C ABI takes the
            # option: needed where the CRDs are already installed by another field manager.
            opts = {"namespace": namespace, "create_namespace": True, "timeout_seconds": 120, "skip_crds": True}
            payload = helm._native.call_string(
                "helm_install", config._raw(), config._context_arg(None), helm._native.HANDLE(0), chart, name,
                None if values is None else json.dumps(values), json.dumps(opts))
            release = json.loads(payload)
        print(json.dumps({"name": release.get("name"), "version": release.get("version"), "status": (release.get("info") or {}).get("status")}))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
