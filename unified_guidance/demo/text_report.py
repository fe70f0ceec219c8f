"""The text section of the report: evidence lines, one table per attribute, the trade-off figure."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .io import atomic_write

ADHERENCE_SLACK = 0.05
"""A mitigation "holds" adherence when it loses at most this much against CFG at its scale."""


def _at(rows: Sequence[Mapping[str, Any]], method: str, scale: float) -> Mapping[str, Any] | None:
    return next((r for r in rows if r["method"] == method and r["scale"] == scale), None)


def _disjoint(lo_row: Mapping[str, Any], hi_row: Mapping[str, Any], measure: str) -> bool:
    """Whether the 95 % interval of ``hi_row`` lies wholly above that of ``lo_row``."""
    lo, hi = lo_row[f"{measure}_ci"], hi_row[f"{measure}_ci"]
    return None not in (lo[1], hi[0]) and hi[0] > lo[1]


def holds(row: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> bool:
    """A mitigation row holds when, against plain CFG at its scale and attribute, it keeps adherence
    (within :data:`ADHERENCE_SLACK`) with lower perplexity (given the instructed prompt) and no more
    repetition."""
    plain = _at([r for r in rows if r["attribute"] == row["attribute"]], "cfg", row["scale"])
    if plain is None or row["method"] == "cfg":
        return False
    return (
        row["adherence"] >= plain["adherence"] - ADHERENCE_SLACK
        and row["perplexity_cond"] < plain["perplexity_cond"]
        and row["repetition"] <= plain["repetition"]
    )


def text_evidence(rows: Sequence[Mapping[str, Any]], attribute: str) -> dict[str, Any]:
    """The issue's claims on one attribute's rows (``None``: not measured).

    * ``adherence_rises``: adherence at s = 3 above s = 1 (``adherence_rises_ci``: intervals disjoint);
    * ``diversity_falls``: distinct-2 at the largest CFG scale below s = 1;
    * ``high_s_degrades``: at the largest CFG scale, perplexity (given the instructed prompt) or
      repeated 3-grams above s = 1;
    * ``mitigations_hold``: the mitigations that :func:`holds` at the high scales.
    """
    mine = [r for r in rows if r["attribute"] == attribute]
    plain = sorted((r for r in mine if r["method"] == "cfg"), key=lambda r: r["scale"])
    one, three = _at(mine, "cfg", 1.0), _at(mine, "cfg", 3.0)
    top = plain[-1] if plain and plain[-1]["scale"] > 1 else None
    out: dict[str, Any] = dict.fromkeys(("adherence_rises", "adherence_rises_ci", "diversity_falls", "high_s_degrades"))
    if one and three:
        out["adherence_rises"] = three["adherence"] > one["adherence"]
        out["adherence_rises_ci"] = _disjoint(one, three, "adherence")
    if one and top:
        out["diversity_falls"] = top["distinct_2"] < one["distinct_2"]
        out["high_s_degrades"] = (
            top["perplexity_cond"] > one["perplexity_cond"] or top["repetition"] > one["repetition"]
        )
    mitigations = [r for r in mine if r["method"] != "cfg"]
    out["mitigations_hold"] = sorted({f"{r['method']} s={r['scale']:g}" for r in mitigations if holds(r, rows)})
    return out


def _ci(row: Mapping[str, Any], measure: str, fmt: str = "{:.2f}") -> str:
    lo, hi = row[f"{measure}_ci"]
    value = row[measure]
    if value is None:
        return "—"
    if lo is None or hi is None:
        return fmt.format(value)
    return f"{fmt.format(value)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _snippet(text: str, limit: int = 90) -> str:
    one = " ".join(text.split()).replace("|", "/")
    return one if len(one) <= limit else one[: limit - 1] + "…"


HEADER = [
    "method", "s", "adherence", "distinct-2", "self-BLEU", "repeated 3-grams", "ppl (bare q.)", "ppl (instructed)",
    "content kept", "tokens", "tok/s", "first answer",
]  # fmt: skip


def attribute_table(rows: Sequence[Mapping[str, Any]], attribute: str, texts: Mapping[str, Any]) -> list[str]:
    """Markdown rows of one attribute: plain CFG by scale, then the mitigations (first answer of question 1)."""
    mine = [r for r in rows if r["attribute"] == attribute]
    order = sorted(mine, key=lambda r: (r["method"] != "cfg", r["scale"], r["method"]))
    outputs = texts.get(attribute, {}).get("outputs", {})
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in order:
        first = outputs.get(f"{r['method']} s={r['scale']:g}", [[""]])[0][0]
        cells = [
            r["method"], f"{r['scale']:g}", _ci(r, "adherence"), _ci(r, "distinct_2"), _ci(r, "self_bleu"),
            _ci(r, "repetition"), _ci(r, "perplexity", "{:.1f}"), _ci(r, "perplexity_cond", "{:.1f}"),
            _ci(r, "content_kept"), f"{r['length']:.1f}", f"{r['tokens_per_s']:.0f}", _snippet(first),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


CLAIMS = {
    "adherence_rises": "adherence rises from s = 1 to s = 3",
    "adherence_rises_ci": "… with disjoint 95 % intervals",
    "diversity_falls": "distinct-2 at the largest s below s = 1",
    "high_s_degrades": "largest s: perplexity (instructed) or repetition above s = 1",
}


def text_markdown(rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], texts: Mapping[str, Any]) -> str:
    """The report's text section (or the line saying why it was skipped)."""
    if meta.get("skipped"):
        return f"## text\n\nSkipped: {meta['skipped']}.\n"
    attributes = list(meta["attributes"])
    marks = {True: "✓", False: "✗", None: "–"}
    out = [
        "## text",
        "",
        f"{meta['model']} ({meta['parameters']:,} parameters): {meta['questions']} questions × "
        f"{meta['samples']} samples per attribute and setting, up to {meta['max_new_tokens']} new tokens, "
        f"temperature {meta['temperature']:g}, top-p {meta['top_p']:g}, all prompts of a setting in one guided "
        f"decode. Section time {meta['seconds']:.0f} s (model load {meta['load_seconds']:.0f} s). "
        "Intervals: 95 % bootstrap.",
        "",
        "| claim | " + " | ".join(attributes) + " |",
        "|" + "---|" * (len(attributes) + 1),
    ]
    evidence = {a: text_evidence(rows, a) for a in attributes}
    for key, text in CLAIMS.items():
        out.append(f"| {text} | " + " | ".join(marks[evidence[a][key]] for a in attributes) + " |")
    held = [", ".join(evidence[a]["mitigations_hold"]) or "none" for a in attributes]
    out += ["| mitigations that hold adherence with lower perplexity | " + " | ".join(held) + " |", ""]
    for a in attributes:
        info = meta["attributes"][a]
        ref = f"the question + “{info['negative']}”" if info["negative"] else "the bare question"
        out += [f"### {a}", "", f"Condition: the question + “{info['instruction']}”; reference: {ref}; "
                f"judge: {info['judge']}.", ""]  # fmt: skip
        out += [*attribute_table(rows, a, texts), ""]
    if meta.get("figure"):
        out += [f"![text trade-off]({meta['figure']})", ""]
    return "\n".join(out)


def text_tradeoff(rows: Sequence[Mapping[str, Any]], attributes: Sequence[str], path: Path) -> Path:
    """Per attribute: adherence against distinct-2 (CFG as a curve over s, mitigations as points),
    and perplexity against s (the fluency cost)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(attributes), figsize=(4.2 * len(attributes), 7.5), squeeze=False)
    for col, attribute in enumerate(attributes):
        mine = [r for r in rows if r["attribute"] == attribute]
        plain = sorted((r for r in mine if r["method"] == "cfg"), key=lambda r: r["scale"])
        top, bottom = axes[0][col], axes[1][col]
        top.plot([r["distinct_2"] for r in plain], [r["adherence"] for r in plain], "o-", color="k", label="CFG")
        for r in plain:
            top.annotate(f"{r['scale']:g}", (r["distinct_2"], r["adherence"]), fontsize=7, xytext=(3, 3),
                         textcoords="offset points")  # fmt: skip
        bottom.plot([r["scale"] for r in plain], [r["perplexity_cond"] for r in plain], "o-", color="k", label="CFG")
        bottom.plot([r["scale"] for r in plain], [r["perplexity"] for r in plain], "o--", color="0.5",
                    label="CFG (ppl given the bare question)")  # fmt: skip
        for i, r in enumerate(r for r in mine if r["method"] != "cfg"):
            label = f"{r['method']} s={r['scale']:g}"
            top.scatter(r["distinct_2"], r["adherence"], marker="sv^DPX"[i % 6], color=f"C{i}", label=label)
            bottom.scatter(r["scale"], r["perplexity_cond"], marker="sv^DPX"[i % 6], color=f"C{i}", label=label)
        top.set(xlabel="distinct-2 (diversity)", ylabel="adherence (judge)", title=attribute)
        bottom.set(xlabel="scale s", ylabel="perplexity (instructed prompt)", yscale="log")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[1][0].legend(fontsize=7)
    fig.suptitle("Text: adherence vs diversity (numbers: s), and the fluency cost")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def text_section(opts: Any, out: Path, *, quick: bool, progress: bool, figures: bool) -> tuple[list, dict, str]:
    """Run the text section for the demo: its rows, its meta (evidence, files) and its Markdown.

    Writes every output text to ``out/text_samples.json`` and, with ``figures``, the trade-off
    figure to ``out/figures/text_tradeoff.png``.
    """
    from .io import atomic_write_json
    from .text import run_text_section

    rows, meta, texts = run_text_section(opts, quick=quick, progress=progress)
    if rows:
        atomic_write_json(out / "text_samples.json", texts)
        meta["samples_file"] = "text_samples.json"
        meta["evidence"] = {a: text_evidence(rows, a) for a in meta["attributes"]}
        if figures:
            (out / "figures").mkdir(exist_ok=True)
            meta["figure"] = str(text_tradeoff(rows, list(meta["attributes"]), out / "figures/text_tradeoff.png")
                                 .relative_to(out))  # fmt: skip
    return rows, meta, text_markdown(rows, meta, texts)
