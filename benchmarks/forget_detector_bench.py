"""Forget requests: detection on the labelled corpus (precision, recall, F1 and subject accuracy of the rules,
and of the LLM classifier when ``MEMCUBED_LLM_BASE_URL`` is set: an OpenAI-compatible API, model
``MEMCUBED_LLM_MODEL``), then which memories a subject matches: for each labelled (subject, memory) pair, the
memory counts as matched when it contains the subject's words (lexical) or its embedding is at least the threshold
similar to the subject's (dense), the two signals ``forget_requests`` uses; precision and recall per threshold.
A subject counts as right when it equals the labelled one after the detector's normalisation (lowercase, no "my").

With ``--locomo PATH`` the rules also run over every LoCoMo turn (casual chats with no forget request in them:
every detection there is a false positive a consolidation benchmark would act on).

    python benchmarks/forget_detector_bench.py [--corpus tests/fixtures/forget_requests.jsonl] [--show-errors] \
        [--locomo /work/shared/data/locomo/locomo10.json] [--out benchmarks/results/forget-detector.json]

``--out`` keeps the two tables as a results file for ``benchmarks/render.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402 - after the path fix, as a script
from app.forget_requests.detector import Detection, content_words, detect, might_be_request  # noqa: E402
from app.services.forget_requests import llm_verdict  # noqa: E402
from app.vector.embedder import load_embedder  # noqa: E402
from benchmarks.search_bench import provenance  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "forget_requests.jsonl"


# Subject → memories about it (True) and not (False): what a user who says "forget my <subject>" means.
MATCHING: dict[str, list[tuple[str, bool]]] = {
    "address": [("My home address is 42 Elm Street, Springfield", True),
                ("Send the parcel to my address: 42 Elm Street", True),
                ("I live at 42 Elm Street in Springfield", True),
                ("We moved into the house on Elm Street last spring", True),
                ("My phone number is 555-0134", False), ("My email is bob@example.com", False),
                ("I work as a nurse at the city hospital", False), ("My favourite colour is green", False)],
    "phone number": [("My phone number is 555-0134", True), ("Call me on 555-0134 after six", True),
                     ("My new mobile is 555-0199", True), ("My home address is 42 Elm Street", False),
                     ("I have a dog named Rex", False), ("My email is bob@example.com", False)],
    "birthday": [("My birthday is on March 3rd", True), ("I turn 40 on March 3rd", True),
                 ("My sister's birthday is in May", False), ("We celebrated Tom's birthday at the lake", False),
                 ("I have a dentist appointment on March 10th", False)],
    "salary": [("My salary is 85,000 a year", True), ("I earn about 7k a month after tax", True),
               ("My raise brought my pay to 90k", True), ("I work as a nurse at the city hospital", False),
               ("The rent went up to 1,500 a month", False)],
    "ex-husband": [("My ex-husband is called Mark", True), ("Mark and I divorced in 2019", True),
                   ("My husband's name is Mark", False), ("My brother Mark lives in Ohio", False),
                   ("I have a dog named Rex", False)],
}


def matching(thresholds: list[float]) -> list[dict[str, Any]]:
    """Precision / recall of "lexical or dense ≥ t" against the MATCHING labels, for each threshold."""
    embedder = load_embedder(Settings().embedding_model)
    pairs: list[tuple[bool, bool, float]] = []  # (about, lexical, similarity)
    for subject, memories in MATCHING.items():
        query = embedder.encode_one(subject)
        vecs = embedder.encode([m for m, _ in memories])
        words = content_words(subject)
        for (memory, about), vec in zip(memories, vecs):
            lexical = all(re.search(r"\b" + re.escape(w), memory, re.IGNORECASE) for w in words)
            pairs.append((about, lexical, float(vec @ query)))
    rows = []
    for t in [*thresholds, 2.0]:  # 2.0: lexical only
        tp = sum(1 for about, lex, sim in pairs if about and (lex or sim >= t))
        fp = sum(1 for about, lex, sim in pairs if not about and (lex or sim >= t))
        positives = sum(1 for about, _, _ in pairs if about)
        rows.append({"threshold": "lexical only" if t > 1 else f"{t:.2f}", "tp": tp, "fp": fp,
                     "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / positives})
    return rows


def score(rows: list[dict[str, Any]], classify: Callable[[str], Detection | None]) -> dict[str, Any]:
    tp = fp = fn = tn = right_subject = 0
    errors: list[str] = []
    started = time.perf_counter()
    for row in rows:
        found = classify(row["text"])
        if row["forget"] and found is not None:
            tp += 1
            right_subject += found.subject == row["subject"]
            if found.subject != row["subject"]:
                errors.append(f"subject {found.subject!r} != {row['subject']!r}: {row['text']}")
        elif row["forget"]:
            fn += 1
            errors.append(f"missed: {row['text']}")
        elif found is not None:
            fp += 1
            errors.append(f"false positive ({found.subject!r}): {row['text']}")
        else:
            tn += 1
    elapsed = time.perf_counter() - started
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall, "f1": f1,
            "subject_accuracy": right_subject / tp if tp else 0.0, "ms_per_message": 1000 * elapsed / len(rows),
            "errors": errors}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--locomo", type=Path, help="locomo10.json: count rule detections over its turns")
    parser.add_argument("--thresholds", type=lambda v: [float(x) for x in v.split(",")],
                        default=[0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--out", type=Path, help="write the tables as a results file (JSON) here")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.corpus.read_text().splitlines() if line.strip()]
    positives = sum(r["forget"] for r in rows)
    print(f"corpus: {len(rows)} messages, {positives} forget requests, {len(rows) - positives} other")
    settings = Settings()
    detectors: dict[str, Callable[[str], Detection | None]] = {"rules": detect}
    if settings.llm_base_url:
        detectors[f"llm ({settings.llm_model})"] = (
            lambda text: llm_verdict(settings, text) if might_be_request(text) else None)
    print("| detector | TP | FP | FN | TN | precision | recall | F1 | subject accuracy | ms / message |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    results = {name: score(rows, fn) for name, fn in detectors.items()}
    for name, r in results.items():
        print(f"| {name} | {r['tp']} | {r['fp']} | {r['fn']} | {r['tn']} | {r['precision']:.3f} | {r['recall']:.3f} "
              f"| {r['f1']:.3f} | {r['subject_accuracy']:.3f} | {r['ms_per_message']:.3f} |")
    if args.show_errors:
        for name, r in results.items():
            print(f"\n{name}:")
            for line in r["errors"]:
                print(f"  {line}")
    if args.locomo:
        turns = [t["text"] for conv in json.loads(args.locomo.read_text())
                 for key, session in conv["conversation"].items()
                 if key.startswith("session_") and isinstance(session, list) for t in session]
        flagged = [(t, d.subject) for t in turns if (d := detect(t)) is not None]
        print(f"\nLoCoMo: {len(flagged)} of {len(turns)} turns detected as forget requests")
        for text, subject in flagged:
            print(f"  {subject!r}: {text}")
    pairs = sum(len(m) for m in MATCHING.values())
    print(f"\nmatching: {len(MATCHING)} subjects, {pairs} (subject, memory) pairs, "
          f"{sum(a for m in MATCHING.values() for _, a in m)} about the subject")
    print("| lexical or dense ≥ | TP | FP | precision | recall |")
    print("|---|---|---|---|---|")
    matched = matching(args.thresholds)
    for row in matched:
        print(f"| {row['threshold']} | {row['tp']} | {row['fp']} | {row['precision']:.3f} | {row['recall']:.3f} |")
    if args.out:
        three = ["{:.3f}"] * 3
        detection = {"columns": ["detector", "TP", "FP", "FN", "TN", "precision", "recall", "F1", "subject accuracy",
                                 "ms / message"], "formats": [None] * 5 + three + ["{:.3f}", "{:.3f}"],
                     "rows": [[name, r["tp"], r["fp"], r["fn"], r["tn"], r["precision"], r["recall"], r["f1"],
                               r["subject_accuracy"], r["ms_per_message"]] for name, r in results.items()]}
        subjects = {"columns": ["lexical or dense ≥", "TP", "FP", "precision", "recall"],
                    "formats": [None, None, None, "{:.3f}", "{:.3f}"],
                    "rows": [[row["threshold"], row["tp"], row["fp"], row["precision"], row["recall"]]
                             for row in matched]}
        report = {**provenance(" ".join(["python benchmarks/forget_detector_bench.py", *argv])),
                  "corpus": {"messages": len(rows), "forget_requests": positives},
                  "tables": {"detection": detection, "subjects": subjects}}
        if args.locomo:
            report["tables"]["locomo"] = {"columns": ["LoCoMo turns", "detected as forget requests"],
                                          "formats": ["{:,}", "{:,}"], "rows": [[len(turns), len(flagged)]]}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
