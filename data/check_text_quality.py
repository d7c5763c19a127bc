"""Quick self-check for hand-written sample text (used while writing the samples).

Usage: python data/check_text_quality.py FILE.csv COLUMN   |   python data/check_text_quality.py FILE.json
Reports: count, exact duplicates, share of 5-grams that occur more than once, most common 5-grams.
"""
import csv, json, re, sys
from collections import Counter

def texts_from(path, column=None):
    if path.endswith(".json"):
        data = json.load(open(path, encoding="utf-8"))
        out = []
        for art in data["data"]:
            for p in art["paragraphs"]:
                out.append(p["context"])
                out.extend(q["question"] for q in p["qas"])
        return out
    return [row[column] for row in csv.DictReader(open(path, encoding="utf-8"))]

texts = texts_from(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
grams = Counter()
for t in texts:
    words = re.findall(r"[a-z0-9]+", t.lower())
    grams.update(set(tuple(words[i:i + 5]) for i in range(len(words) - 4)))
total = sum(grams.values())
repeated = sum(c for c in grams.values() if c > 1)
print(f"texts={len(texts)} exact_duplicates={len(texts) - len(set(texts))} "
      f"repeated_5gram_share={repeated / max(total, 1):.3f}  (aim for < 0.05)")
for g, c in grams.most_common(8):
    if c > 1:
        print(c, " ".join(g))
