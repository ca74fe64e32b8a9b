"""The distillation benchmark's synthetic cube: deterministic, distinct facts whose probes are well formed."""

from __future__ import annotations

from benchmarks.distill_bench import RELATIONS, facts, probe


def test_facts_are_deterministic_distinct_and_probeable() -> None:
    a = facts(200)
    assert a == facts(200) and a != facts(200, seed=1)
    assert len({f.trained for f in a}) == len({f.held_out for f in a}) == 200
    assert all(f.trained != f.held_out and f.trained.endswith(f.answer + ".") for f in a)
    assert a[0].trained.split()[2:] == ["lives", "in", a[0].answer + "."]
    assert a[1].trained.split()[2:4] == ["was", "born"] and 1931 <= int(a[1].answer) <= 1999
    people = {" ".join(f.held_out.split()[4:6]) for f in a[:: len(RELATIONS)]}
    assert len(people) == 50
    p = probe(a[0].held_out, a[0].answer)
    assert p.prompt + " " + p.answer + "." == a[0].held_out
