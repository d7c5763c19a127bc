"""SQuAD-format question answering files, checked and repaired so that real files load.

Extractive QA trains on character offsets: an answer whose ``answer_start`` is
off by one character teaches the model a span that is not the answer. Real
files have such answers: in the 2020-04-23 COVID-QA release 234 of 1,380
answers are shifted by whitespace or a character or two (177 of 820 in the
half under ``../shared/datasets``, where 134 more carry spaces around the text),
so a loader that refuses them refuses the whole dataset, and one that trusts
them trains on wrong spans. This module repairs an answer whose text sits within
:data:`MAX_ANSWER_SHIFT` characters of its ``answer_start`` (the nearest
occurrence wins; spaces around the answer text are trimmed), counts the repairs
in the :class:`~course_lib.data.records.ParseReport` (and says so in one note),
and refuses, in one line with the count and the first case, only answers that
are nowhere near their offset.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..settings import CourseError
from .files import read_json
from .records import ParseReport, dedupe, text_key

MAX_ANSWER_SHIFT = 5  # characters; COVID-QA's shifted answers are off by 1-3


def locate_answer(context: str, text: str, start: int,
                  max_shift: int = MAX_ANSWER_SHIFT) -> tuple[str, int] | None:
    """Where an answer really is, as ``(text, start)`` with the text trimmed of spaces.

    The answer is taken as given when its text is at ``start``; otherwise the
    occurrence of the trimmed text nearest to ``start`` (at most ``max_shift``
    characters away) is taken. ``None`` when there is none that near.
    """
    trimmed = text.strip()
    if not trimmed or start < 0:
        return None
    lead = len(text) - len(text.lstrip())
    if context[start : start + len(text)] == text:
        return trimmed, start + lead
    low, high = max(0, start - max_shift), start + lead + max_shift + len(trimmed)
    best = None
    found = context.find(trimmed, low, high)
    while found != -1:
        distance = min(abs(found - start), abs(found - start - lead))
        if best is None or distance < best[0]:  # ties: the earlier occurrence
            best = (distance, found)
        found = context.find(trimmed, found + 1, high)
    return None if best is None else (trimmed, best[1])


def repair_note(report: ParseReport) -> str:
    """The one line that says how many answers :func:`parse_squad` moved and trimmed."""
    said = []
    if report.repaired:
        said.append(f"repaired {report.repaired} answer offsets (text up to "
                    f"{MAX_ANSWER_SHIFT} characters from answer_start)")
    if report.trimmed:
        said.append(f"trimmed spaces around {report.trimmed} answers")
    return "; ".join(said)


def parse_squad(path_or_data, source: str | None = None) -> tuple[list[dict], ParseReport]:
    """SQuAD 1.1 / 2.0 JSON (``data -> paragraphs -> qas -> answers``), as COVID-QA uses.

    Every answer must sit at its ``answer_start`` or within
    :data:`MAX_ANSWER_SHIFT` characters of it (then it is moved there, and counted
    in ``report.repaired``); spaces around an answer's text are trimmed (counted in
    ``report.trimmed``); ``is_impossible`` questions get empty answers. A
    question asked twice about the same passage is kept once (and dropped, both
    copies, when the two copies give different answers). ``title`` is the
    paragraph's ``document_id`` when it has one (COVID-QA), else the article's
    title: the loader keeps each document in one split.
    """
    if isinstance(path_or_data, (str, Path)):
        source = source or str(path_or_data)
        data = read_json(Path(path_or_data))
    else:
        data, source = path_or_data, source or "<squad data>"
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise CourseError(f"{source}: not SQuAD format (expected a top-level 'data' list)")
    records, seen_ids, fixes, lost = [], set(), Counter(), []
    for a, article in enumerate(data["data"]):
        if not isinstance(article, dict):
            raise CourseError(f"{source}: article {a} is not an object")
        title = str(article.get("title", f"article-{a}"))
        paragraphs = article.get("paragraphs")
        if not isinstance(paragraphs, list):
            raise CourseError(f"{source}: article {a} ({title!r}) has no 'paragraphs' list")
        for p, paragraph in enumerate(paragraphs):
            where = f"article {a} paragraph {p}"
            if not isinstance(paragraph, dict):
                raise CourseError(f"{source}: {where} is not an object")
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise CourseError(f"{source}: {where} has no context text")
            qas = paragraph.get("qas", [])
            if not isinstance(qas, list):
                raise CourseError(f"{source}: {where}: 'qas' is not a list")
            doc = str(paragraph.get("document_id", title))
            for q in qas:
                record, fixed, missed = _squad_question(q, context, source, where, seen_ids)
                fixes += fixed
                lost += missed
                records.append({**record, "title": doc, "context": context})
    if lost:
        raise CourseError(f"{source}: {len(lost)} answer{'s are' if len(lost) > 1 else ' is'} "
                          f"not within {MAX_ANSWER_SHIFT} characters of answer_start; "
                          f"first: {lost[0]}")
    if not records:
        raise CourseError(f"{source}: no questions found")
    report = ParseReport(source)
    records = dedupe(records, lambda r: (text_key(r["context"]), text_key(r["question"])),
                     "_answer_key", report)
    for r in records:
        del r["_answer_key"]
    report.repaired, report.trimmed = fixes["moved"], fixes["trimmed"]
    if fixes:
        report.notes.append(repair_note(report))
    return records, report


def _squad_question(q, context: str, source: str, place: str, seen_ids: set
                    ) -> tuple[dict, Counter, list[str]]:
    """One SQuAD question, each answer located in the passage.

    Returns the record, how many answers were moved and trimmed, and a line for
    each answer that is nowhere near its ``answer_start``.
    """
    where = f"{source}: {place}"
    if not isinstance(q, dict):
        raise CourseError(f"{where}: a question is not an object")
    qid = str(q.get("id", "")).strip()
    question = q.get("question")
    if not qid or not isinstance(question, str) or not question.strip():
        raise CourseError(f"{where}: a question has no id or no question text")
    if qid in seen_ids:
        raise CourseError(f"{where}: question id {qid!r} appears twice")
    seen_ids.add(qid)
    impossible = bool(q.get("is_impossible", False))
    answers = [] if impossible else q.get("answers", [])
    if not isinstance(answers, list):
        raise CourseError(f"{where}: question {qid}: 'answers' is not a list")
    texts, starts, fixed, missed = [], [], Counter(), []
    for ans in answers:
        text = ans.get("text") if isinstance(ans, dict) else None
        start = ans.get("answer_start") if isinstance(ans, dict) else None
        if not isinstance(text, str) or not text.strip() or isinstance(start, bool) \
                or not isinstance(start, int):
            raise CourseError(f"{where}: question {qid}: an answer needs a 'text' and an "
                              "integer 'answer_start'")
        found = locate_answer(context, text, start)
        if found is None:
            missed.append(f"{place} question {qid}: answer {text[:40]!r} is not at "
                          f"answer_start {start} (found "
                          f"{context[start : start + len(text)][:40]!r})")
            continue
        if context[start : start + len(text)] != text:
            fixed["moved"] += 1
        elif found[0] != text:
            fixed["trimmed"] += 1
        texts.append(found[0])
        starts.append(found[1])
    if not answers and not impossible:
        raise CourseError(f"{where}: question {qid} has no answers and is not marked "
                          "is_impossible")
    record = {"id": qid, "question": question.strip(),
              "answers": {"text": texts, "answer_start": starts},
              "_answer_key": tuple(sorted(set(texts)))}
    return record, fixed, missed


def squad_from_rows(rows: list[dict], source: str) -> tuple[list[dict], ParseReport]:
    """Flat SQuAD-style rows (``context``, ``question``, ``answers``) checked like the JSON."""
    articles: dict[str, list] = {}
    for r in rows:
        doc = str(r.get("document_id", r.get("title", "")))
        answers = [{"text": t, "answer_start": int(s)}
                   for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]
        articles.setdefault(doc, []).append(
            {"context": r["context"], "qas": [{"id": str(r["id"]), "question": r["question"],
                                               "answers": answers,
                                               "is_impossible": bool(r.get("is_impossible"))}]})
    data = {"data": [{"title": doc, "paragraphs": paragraphs}
                     for doc, paragraphs in articles.items()]}
    return parse_squad(data, source)
