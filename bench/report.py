"""From raw measurements to conclusions: cost model, agreement, ratios, tables.

Cost of one EM iteration (all restarts together), the floor any implementation has to pay:

* flops, full covariance: ``4 N K D (D + 1)`` per restart. Per point and component the E-step
  whitens ``x - mu`` with a D x D triangle and sums squares (D^2 + D multiply-adds), the M-step
  accumulates the mean and the scatter (D + D^2); a multiply-add is 2 flops.
* flops, diag: ``8 N K D`` per restart (2D multiply-adds in each step).
* transcendentals: ``N K`` exp and ``N`` log per restart (reported, not in the floor).
* bytes: ``2 N D s`` (s = 4 or 8): X read once per step. Batched restarts can share the reads,
  so this stays the floor whatever ``n_init``.

The floor of a dtype is ``max(flops / GEMM rate, bytes / bandwidth)`` with the machine's best
measured GEMM rate of that dtype and best bandwidth; ``x limit`` is time per iteration / floor.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .workloads import Case

# Final log-likelihoods must agree to this, relative to max(|reference|, 1).
TOLERANCE = {"float32": 1e-3, "float64": 1e-6}
# The reference of each comparison: the first of these with a result.
REFERENCE_ORDER = ("sklearn64", "jaxgmm64", "jaxgmm")


def iteration_cost(case: Case) -> dict[str, float]:
    n, d, k, r = case.n, case.d, case.k, case.n_init
    per_point = 4 * d * (d + 1) if case.covariance_type == "full" else 8 * d
    return {
        "flops": float(r * n * k * per_point),
        "transcendentals": float(r * (n * k + n)),
        "bytes_float32": float(2 * n * d * 4),
        "bytes_float64": float(2 * n * d * 8),
    }


def ceilings(machine: dict) -> dict[str, float]:
    g, b = machine["gemm_gflops"], machine["bandwidth_gbs"]
    return {
        "gemm_float32": 1e9 * max(g["numpy_float32"], g["jax_float32"]),
        "gemm_float64": 1e9 * max(g["numpy_float64"], g["jax_float64"]),
        "bandwidth": 1e9 * max(b.values()),
    }


def floor_s(cost: dict[str, float], ceiling: dict[str, float], dtype: str) -> float:
    return max(
        cost["flops"] / ceiling[f"gemm_{dtype}"], cost[f"bytes_{dtype}"] / ceiling["bandwidth"]
    )


def _rel_diff(values: list[float], reference: list[float]) -> float:
    return max(abs(v - r) / max(abs(r), 1.0) for v, r in zip(values, reference, strict=True))


def analyse(entries: list[dict], machine: dict) -> bool:
    """Add agreement, ratios and distance to the floor to every result; True when all agree.

    ``entries`` holds, per case, ``{"case": Case, "results": {impl: result}}``; results with an
    ``"error"`` or ``"skipped"`` key are left alone.
    """
    ceiling = ceilings(machine)
    all_agree = True
    for entry in entries:
        case: Case = entry["case"]
        ok = {
            name: r
            for name, r in entry["results"].items()
            if "error" not in r and "skipped" not in r
        }
        base = ok.get("jaxgmm")
        if case.kind == "select":
            for r in ok.values():
                if base:
                    r["ratio_e2e"] = r["e2e_s"] / base["e2e_s"]
                    r["same_choice"] = r["chosen"] == base["chosen"]
            continue
        entry["cost"] = cost = iteration_cost(case)
        entry["floor_s"] = {dt: floor_s(cost, ceiling, dt) for dt in ("float32", "float64")}
        reference = next((name for name in REFERENCE_ORDER if name in ok), None)
        entry["reference"] = reference
        for r in ok.values():
            r["x_limit"] = r["per_iter_s"] / entry["floor_s"][r["dtype"]]
            if base:
                r["ratio_iter"] = r["per_iter_s"] / base["per_iter_s"]
                r["ratio_e2e"] = r["e2e_s"] / base["e2e_s"]
            ref = ok[reference]
            both64 = r["dtype"] == ref["dtype"] == "float64"
            r["tolerance"] = TOLERANCE["float64" if both64 else "float32"]
            r["rel_diff"] = _rel_diff(r["loglik"], ref["loglik"])
            r["agree"] = r["rel_diff"] <= r["tolerance"]
            all_agree &= r["agree"]
    return all_agree


# --- output ----------------------------------------------------------------------------------


def _f(value: Any, fmt: str, missing: str = "-") -> str:
    return missing if value is None else format(value, fmt)


def _memory_cells(r: dict) -> list[str]:
    """Baseline, peak of the timed runs (+ over the baseline; GPU peak when known), and the
    peak up to the end of the first calls, compilation included."""
    base, first = r["rss_baseline_mb"], r["rss_first_mb"]
    peak = r["rss_peak_mb"] if r["rss_peak_mb"] is not None else first
    gpu = "" if r.get("gpu_peak_mb") is None else f", GPU {r['gpu_peak_mb']:.0f}"
    return [f"{base:.0f}", f"{peak:.0f} (+{peak - base:.0f}{gpu})", f"{first:.0f}"]


def _result_cells(r: dict) -> list[str]:
    """The cells of one fixed-iteration row, shared by the text and markdown tables."""
    if "skipped" in r:
        return ["skipped: " + r["skipped"]]
    if "error" in r:
        return ["FAILED: " + r["error"].strip().splitlines()[-1][:90]]
    agree = "ok" if r["agree"] else "DIFFERS"
    return [
        r["dtype"].replace("float", "f"),
        _f(r["per_iter_s"] * 1e3, ".3f"),
        _f(r.get("ratio_iter"), ".2f"),
        _f(r["x_limit"], ".1f"),
        _f(r["compile_s"], ".2f"),
        f"{r['e2e_s']:.3f} ({r['e2e_n_iter']})",
        _f(r.get("ratio_e2e"), ".2f"),
        *_memory_cells(r),
        f"{r['loglik'][0]:.6f}",
        f"{r['rel_diff']:.1e} {agree}",
        _f(r.get("load_avg"), ".1f"),
    ]


MEMORY_HEADERS = ["RSS base MB", "peak MB timed (+over base)", "peak MB 1st call"]
HEADERS = [
    "case",
    "impl",
    "dtype",
    "ms/iter",
    "x jaxgmm",
    "x floor",
    "compile/warm-up s",
    "e2e s (iters)",
    "e2e x jaxgmm",
    *MEMORY_HEADERS,
    "final mean LL",
    "rel diff",
    "load",
]
SELECT_HEADERS = [
    "case",
    "impl",
    "dtype",
    "grid s (warm)",
    "first pass s",
    "x jaxgmm",
    *MEMORY_HEADERS,
    "BIC choice",
    "load",
]


def _select_cells(r: dict) -> list[str]:
    if "skipped" in r:
        return ["skipped: " + r["skipped"]]
    if "error" in r:
        return ["FAILED: " + r["error"].strip().splitlines()[-1][:90]]
    choice = r["chosen"] + ("" if r.get("same_choice", True) else " (differs from jaxgmm)")
    return [
        r["dtype"].replace("float", "f"),
        f"{r['e2e_s']:.2f}",
        f"{r['e2e_cold_s']:.2f}",
        _f(r.get("ratio_e2e"), ".2f"),
        *_memory_cells(r),
        choice,
        _f(r.get("load_avg"), ".1f"),
    ]


def _rows(entries: list[dict], kind: str) -> list[list[str]]:
    rows = []
    for entry in entries:
        case = entry["case"]
        if (case.kind == "select") != (kind == "select"):
            continue
        for name, r in entry["results"].items():
            cells = _select_cells(r) if kind == "select" else _result_cells(r)
            rows.append([case.label, name, *cells])
    return rows


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows if len(r) == len(headers)))
        for i, h in enumerate(headers)
    ]
    lines = [
        "  ".join(
            h.rjust(w) if i > 1 else h.ljust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    for r in rows:
        if len(r) != len(headers):  # a skipped or failed row: one message after case and impl
            lines.append("  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2]]))
        else:
            lines.append(
                "  ".join(
                    c.rjust(w) if i > 1 else c.ljust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
    return "\n".join(lines)


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        cells = r if len(r) == len(headers) else [*r, *[""] * (len(headers) - len(r))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cost_rows(entries: list[dict]) -> list[list[str]]:
    rows = []
    for entry in entries:
        case = entry["case"]
        if case.kind == "select":
            continue
        cost, floor = entry["cost"], entry["floor_s"]
        rows.append(
            [
                case.label,
                f"{case.n:,}",
                str(case.d),
                str(case.k),
                str(case.n_init),
                f"{cost['flops'] / 1e9:.3g}",
                f"{cost['bytes_float32'] / 1e6:.3g}",
                f"{cost['transcendentals'] / 1e6:.3g}",
                f"{floor['float32'] * 1e3:.3g}",
                f"{floor['float64'] * 1e3:.3g}",
            ]
        )
    return rows


COST_HEADERS = [
    "case",
    "N",
    "D",
    "K",
    "restarts",
    "GFLOP/iter",
    "MB/iter (f32)",
    "M exp+log/iter",
    "floor ms f32",
    "floor ms f64",
]


def machine_lines(machine: dict) -> list[str]:
    v = machine["versions"]
    g, b = machine["gemm_gflops"], machine["bandwidth_gbs"]
    return [
        f"CPU: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM; "
        f"JAX device: {machine['platform']} ({machine['device_kind']}) x{machine['device_count']}",
        "versions: " + ", ".join(f"{k} {v[k]}" for k in v) + f", python {machine['python']}",
        f"GEMM {machine['gemm_n']}x{machine['gemm_n']} GFLOP/s: "
        + ", ".join(f"{k} {val:.1f}" for k, val in g.items()),
        "bandwidth GB/s: " + ", ".join(f"{k} {val:.1f}" for k, val in b.items()),
        f"date: {machine['date']}; load average (1, 5, 15 min) at start "
        f"{machine['load_avg_start']}, at end {machine.get('load_avg_end')}",
    ]


def text_report(entries: list[dict], machine: dict, settings: dict, all_agree: bool) -> str:
    parts = [
        *machine_lines(machine),
        f"command: {settings['command']}  (jaxgmm at {settings['revision']})",
        f"time per iteration = (median t({settings['iterations']} iterations) - median "
        f"t({settings['low_iterations']})) / {settings['iterations'] - settings['low_iterations']}"
        f", {settings['repeats']} repeats; compile = first call - median call",
        "",
        _text_table(COST_HEADERS, _cost_rows(entries)),
        "",
        _text_table(HEADERS, _rows(entries, "fixed")),
    ]
    select_rows = _rows(entries, "select")
    if select_rows:
        parts += ["", _text_table(SELECT_HEADERS, select_rows)]
    if not all_agree:
        parts += ["", _disagreement_banner(entries)]
    return "\n".join(parts)


def _disagreement_banner(entries: list[dict]) -> str:
    lines = ["!" * 78, "!!! FINAL LOG-LIKELIHOODS DISAGREE: these comparisons are meaningless:"]
    for entry in entries:
        for name, r in entry["results"].items():
            if r.get("agree") is False:
                lines.append(
                    f"!!!   {entry['case'].label} {name}: rel diff {r['rel_diff']:.2e} against "
                    f"{entry['reference']} (tolerance {r['tolerance']:.0e})"
                )
    lines.append("!" * 78)
    return "\n".join(lines)


def markdown_report(entries: list[dict], machine: dict, settings: dict, all_agree: bool) -> str:
    parts = [
        "# jaxgmm benchmark results",
        "",
        *(f"- {line}" for line in machine_lines(machine)),
        "",
        f"Command: `{settings['command']}`, jaxgmm at {settings['revision']}",
        "",
        f"Time per EM iteration = (median t({settings['iterations']}) - median "
        f"t({settings['low_iterations']})) / {settings['iterations'] - settings['low_iterations']}"
        f" over {settings['repeats']} repeats, which cancels the fixed cost of a call. "
        "See bench/README.md for the meaning of each column.",
        "",
        "## Cost of one EM iteration",
        "",
        _md_table(COST_HEADERS, _cost_rows(entries)),
        "",
        "## Fixed-iteration EM and end-to-end fits",
        "",
        _md_table(HEADERS, _rows(entries, "fixed")),
    ]
    select_rows = _rows(entries, "select")
    if select_rows:
        parts += [
            "",
            "## Model-selection grid (end to end)",
            "",
            _md_table(SELECT_HEADERS, select_rows),
        ]
    if not all_agree:
        parts += ["", "```", _disagreement_banner(entries), "```"]
    return "\n".join(parts) + "\n"


def write(
    path_md: Path, entries: list[dict], machine: dict, settings: dict, all_agree: bool
) -> Path:
    """Write the markdown and the JSON beside it; returns the JSON path."""
    path_md.parent.mkdir(parents=True, exist_ok=True)
    path_md.write_text(markdown_report(entries, machine, settings, all_agree))
    cases = [
        {
            **{k: v for k, v in e.items() if k != "case"},
            "case": e["case"].label,
            "spec": asdict(e["case"]),
        }
        for e in entries
    ]
    payload = {"settings": settings, "machine": machine, "all_agree": all_agree, "cases": cases}
    path_json = path_md.with_suffix(".json")
    path_json.write_text(json.dumps(payload, indent=1))
    return path_json
