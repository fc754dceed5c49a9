#!/usr/bin/env python3
"""Generate lm-workbench's built-in corpora (the project's own text, CC0).

Two corpora are written, each as train.txt and valid.txt:

* ``corpora/general/`` - everyday English about pets, people, homes, weather,
  food and town life.  It is tuned so that tiny models learn three seed facts:
  "The cat sat on the [MASK]." -> mat, "The dog wagged its" -> tail, and that
  "It loves to purr." follows "I have a cat.".
* ``corpora/domain/`` - a sailing ship's log.  The same sentence frames take
  different fillers there (the cat sits on the deck, dinner is in the galley),
  so fine-tuning on it visibly shifts a model's predictions.

Format: UTF-8, one sentence per line, documents separated by one blank line.
Every document is a short story of 3-8 sentences in which each sentence
follows on from the one before (usually through a pronoun).

The templates, word lists and topic mix are data, in
``corpora/_templates/<corpus>.json`` (the leading "_" keeps the folder out of
``workbench corpora``).  This script holds only the logic.  It uses a fixed
seed and the standard library alone (CI runs ``--check`` with nothing else
installed), so its output is fully reproducible.

Template data
-------------

A *template* is a string with {slot} placeholders.  A slot is filled from the
document context (fixed for the whole document, e.g. the main character's
name and pronouns) or, failing that, by a fresh draw from the word list of
that name.  Filled-in text may itself contain slots.

``words`` holds the word lists, in named groups that only organise the file.
An item "text*5" has weight 5 (default 1).

``topics`` maps a topic name to its recipe; one topic is chosen per document
by ``weight``.  A recipe has:

* ``opening``: sentences always written, in order;
* ``middle``: a pool in narrative order; ``middle_count`` = [lo, hi] of them
  are sampled and kept in pool order, so the story still flows;
* ``closing`` (optional): one of these ends the document with probability
  ``closing_chance``.

Wherever a sentence is a list, it is a list of alternatives picked uniformly;
"text*5" there stands for five copies.  Optional context settings:

* ``narrator``: "person" (a named man or woman), "relative" ("my mother") or
  {"relative_chance": p} (either); sets {name}, {p}, {o} and {g};
* ``draw_once``: slot -> template, filled once so the whole document talks
  about the same job, vehicle or lost thing;
* ``choose_once``: slot -> list, one item picked uniformly once;
* ``context``: slot -> fixed text;
* ``aliases``: slot -> word list drawn afresh at every use;
* ``variants``: name -> partial recipe that overrides the topic's fields; one
  is picked uniformly in listed order (``weight`` = number of copies), or,
  if the first has a ``chance``, the first with that probability, else the
  second;
* ``pet``: the pet-introduction setup (see ``pet_context``).

Usage::

    python corpora/generate.py          # (re)write the corpus files
    python corpora/generate.py --check  # exit 1 if committed files differ
"""

import argparse
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE_DIR = HERE / "_templates"
# Output order; each corpus's seed and size are in its template file.
CORPORA = ("general", "domain")
VALID_FRACTION = 0.05

# The general corpus's seed-fact probe strings.  They may appear in train.txt
# (that is how the facts are taught) but never in valid.txt, so that
# validation measures generalisation rather than recitation.
PROBE_SENTENCES = ["The cat sat on the mat.", "The dog wagged its tail."]
PROBE_PAIRS = [("I have a cat.", "It loves to purr.")]

SLOT = re.compile(r"\{(\w+)\}")
WEIGHTED = re.compile(r"(.*)\*(\d+(?:\.\d+)?)")

SENTENCE_KEYS = {"opening", "middle", "middle_count", "closing",
                 "closing_chance"}
CONTEXT_KEYS = {"narrator", "draw_once", "choose_once", "context", "aliases",
                "pet"}
TOPIC_KEYS = {"about", "weight", "variants"} | SENTENCE_KEYS | CONTEXT_KEYS
VARIANT_KEYS = {"weight", "chance"} | SENTENCE_KEYS | CONTEXT_KEYS


# ---------------------------------------------------------------------------
# Loading the template data
# ---------------------------------------------------------------------------

def split_weight(item):
    """Split "text*3" into ("text", 3.0), so lists stay compact while still
    allowing skewed frequencies.  A bare item weighs 1."""
    match = WEIGHTED.fullmatch(item)
    if match:
        return match.group(1), float(match.group(2))
    return item, 1.0


def expand_copies(alternatives):
    """Turn ["a*3", "b"] into ["a", "a", "a", "b"].  Alternatives are picked
    uniformly, so a weight there means that many copies.  Anything that is
    not a list (a single template, a tagged sentence) is returned as is."""
    if not isinstance(alternatives, list):
        return alternatives
    copies = []
    for item in alternatives:
        text, weight = split_weight(item)
        if weight != int(weight):
            raise ValueError(f"a template weight must be whole: {item!r}")
        copies.extend([text] * int(weight))
    return copies


def word_table(groups, corpus):
    """Merge the groups of word lists into {name: (options, weights)}.
    Groups only organise the file, so each name may be defined once."""
    table = {}
    for group in groups.values():
        for name, items in group.items():
            if name in table:
                raise ValueError(f"{corpus}: word list {name!r} defined twice")
            pairs = [split_weight(item) for item in items]
            table[name] = ([p[0] for p in pairs], [p[1] for p in pairs])
    return table


def prepare_recipe(recipe, allowed, where):
    """Check a topic (or variant) recipe and expand its weighted alternatives
    once, so a bad edit fails at load time rather than mid-corpus."""
    unknown = set(recipe) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    if ("closing" in recipe) != ("closing_chance" in recipe):
        raise ValueError(f"{where}: closing and closing_chance go together")
    recipe = dict(recipe)
    for key in ("opening", "middle"):
        if key in recipe:
            recipe[key] = [expand_copies(s) for s in recipe[key]]
    if "closing" in recipe:
        recipe["closing"] = expand_copies(recipe["closing"])
    if "variants" in recipe:
        variants = recipe["variants"]
        first = next(iter(variants.values()), {})
        if "chance" in first and len(variants) != 2:
            raise ValueError(f"{where}: a chance needs exactly two variants")
        recipe["variants"] = {
            name: prepare_recipe(body, VARIANT_KEYS, f"{where}, {name!r}")
            for name, body in variants.items()}
    return recipe


def load_spec(corpus):
    """Read corpora/_templates/<corpus>.json: seed, size, word lists and
    topics, ready for ``build``."""
    path = TEMPLATE_DIR / f"{corpus}.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    spec["words"] = word_table(spec["words"], corpus)
    spec["topics"] = {
        name: prepare_recipe(recipe, TOPIC_KEYS, f"{corpus}: topic {name!r}")
        for name, recipe in spec["topics"].items()}
    return spec


# ---------------------------------------------------------------------------
# Filling templates
# ---------------------------------------------------------------------------

class Filler:
    """Fills templates from a word table with one seeded RNG, so every random
    decision in a corpus comes from a single reproducible stream."""

    def __init__(self, rng, table):
        self.rng = rng
        self.table = table

    def draw(self, name):
        """Draw one option from a named word list (weighted)."""
        if name not in self.table:
            raise KeyError(f"unknown slot {{{name}}}")
        options, weights = self.table[name]
        return self.rng.choices(options, weights)[0]

    def fill(self, template, ctx, depth=0):
        """Resolve every {slot} in a template, recursively, using ctx first.
        A context value starting with "@" names a word list to draw from
        afresh at each use."""
        if depth > 8:
            raise ValueError(f"slot recursion too deep in {template!r}")

        def sub(match):
            name = match.group(1)
            value = ctx.get(name)
            if value is None:
                value = self.draw(name)
            elif value.startswith("@"):
                value = self.draw(value[1:])
            return self.fill(value, ctx, depth + 1)

        return SLOT.sub(sub, template)

    def pick(self, alternatives):
        """A sentence may be a list of alternatives; pick one so openings
        vary between documents."""
        if isinstance(alternatives, str):
            return alternatives
        return self.rng.choice(alternatives)

    def story(self, ctx, recipe):
        """Build one document: the opening sentences in order, then sentences
        sampled from the middle pool *in pool order* (pools are written in
        narrative order, so the story still flows), then maybe a closing
        sentence."""
        sents = [self.fill(self.pick(s), ctx) for s in recipe["opening"]]
        middle = recipe["middle"]
        n = min(self.rng.randint(*recipe["middle_count"]), len(middle))
        for i in sorted(self.rng.sample(range(len(middle)), n)):
            sents.append(self.fill(self.pick(middle[i]), ctx))
        closing = recipe.get("closing")
        if closing and self.rng.random() < recipe["closing_chance"]:
            sents.append(self.fill(self.pick(closing), ctx))
        return [tidy(s) for s in sents]


def tidy(sentence):
    """Normalise spacing and capitalise the first letter, so templates can be
    written in lower case and start with a pronoun or slot."""
    s = re.sub(r"\s+", " ", sentence).strip()
    s = s.replace(" ,", ",").replace(" .", ".")
    return s[0].upper() + s[1:]


# ---------------------------------------------------------------------------
# Document context: who and what a story is about
# ---------------------------------------------------------------------------

def narrator_context(filler, narrator, narrators):
    """The story's main character, with pronouns ({name}, {p}, {o}, {g}) so
    later sentences can refer back.  A "relative" ("my mother") gives
    first-person family stories without a proper name."""
    if narrator is None:
        return {}
    if isinstance(narrator, dict):
        chance = narrator["relative_chance"]
        narrator = "relative" if filler.rng.random() < chance else "person"
    if narrator == "relative":
        relative, sex = filler.rng.choice(list(narrators["relatives"].items()))
        name = "my " + relative
    elif narrator == "person":
        sex = "female" if filler.rng.random() < 0.5 else "male"
        name = filler.draw(narrators["name_lists"][sex])
    else:
        raise ValueError(f"unknown narrator {narrator!r}")
    return {"name": name, **narrators["pronouns"][sex]}


def pet_context(filler, pet_spec):
    """Choose a pet, its owner and maybe an adjective for a pet introduction
    ("My sister has an old cat.").  Returns the context and the pet's kind:
    a kitten is a cat, and the kind picks kind-specific word lists (what a
    cat loves is not what a pony loves)."""
    rng = filler.rng
    pets = pet_spec["pets"]
    pet = rng.choices(list(pets), list(pets.values()))[0]
    kind = pet_spec["kind_of"].get(pet, pet)
    owners = pet_spec["owners"]
    have, own, _ = rng.choices(owners, [owner[2] for owner in owners])[0]
    adj = ""
    if rng.random() < pet_spec["adjective_chance"]:
        adj = filler.draw("pet_adj") + " "
    ctx = {"have": have, "own": own, "pet": pet, "adj": adj,
           "article": "an" if adj and adj[0] in "aeiou" else "a"}
    for slot, name in pet_spec["aliases_by_kind"].items():
        ctx[slot] = "@" + name.replace("{kind}", kind)
    return ctx, kind


def sentences_for_kind(pool, kind):
    """Keep the untagged sentences and those tagged for this pet kind (only
    a dog wags its tail when I come home)."""
    return [s["template"] if isinstance(s, dict) else s for s in pool
            if not isinstance(s, dict) or s["kind"] == kind]


def choose_variant(filler, variants):
    """Pick one variant: the first with its "chance", else the second (the
    wind rises or the weather stays fair); or, without a chance, uniformly
    in listed order with "weight" counting as copies."""
    names = list(variants)
    first = variants[names[0]]
    if "chance" in first:
        if filler.rng.random() < first["chance"]:
            return first
        return variants[names[1]]
    copies = [name for name in names
              for _ in range(variants[name].get("weight", 1))]
    return variants[filler.rng.choice(copies)]


def write_document(filler, topic, narrators):
    """One document for a topic: settle the variant and the fixed context
    first (in a set order, since every choice comes from the one RNG), then
    fill the sentences."""
    recipe = topic
    if "variants" in topic:
        variant = choose_variant(filler, topic["variants"])
        recipe = {**topic, **{key: value for key, value in variant.items()
                              if key not in ("weight", "chance")}}
    ctx = narrator_context(filler, recipe.get("narrator"), narrators)
    for slot, template in recipe.get("draw_once", {}).items():
        ctx[slot] = filler.fill(template, ctx)
    for slot, options in recipe.get("choose_once", {}).items():
        ctx[slot] = filler.rng.choice(options)
    ctx.update(recipe.get("context", {}))
    for slot, name in recipe.get("aliases", {}).items():
        ctx[slot] = "@" + name
    if "pet" in recipe:
        pet_ctx, kind = pet_context(filler, recipe["pet"])
        ctx.update(pet_ctx)
        recipe = {**recipe,
                  "middle": sentences_for_kind(recipe["middle"], kind)}
    return filler.story(ctx, recipe)


# ---------------------------------------------------------------------------
# Corpus assembly
# ---------------------------------------------------------------------------

def contains_probe(doc):
    """True if a document holds a general probe sentence or probe pair; such
    documents are kept out of valid.txt."""
    if any(s in doc for s in PROBE_SENTENCES):
        return True
    return any(a == x and b == y for a, b in PROBE_PAIRS
               for x, y in zip(doc, doc[1:]))


def unique_documents(spec, rng):
    """Generate the corpus's documents, dropping duplicates so that no
    document can end up in both splits."""
    filler = Filler(rng, spec["words"])
    topics = list(spec["topics"].values())
    weights = [topic["weight"] for topic in topics]
    narrators = spec.get("narrators", {})
    n_docs = spec["documents"]
    seen, docs = set(), []
    attempts = 0
    while len(docs) < n_docs:
        attempts += 1
        if attempts > n_docs * 20:
            raise RuntimeError("too many duplicate documents")
        topic = rng.choices(topics, weights)[0]
        doc = write_document(filler, topic, narrators)
        key = "\n".join(doc)
        if key in seen:
            continue
        seen.add(key)
        docs.append(doc)
    return docs


def build(spec):
    """Generate a corpus and split it into train and valid; documents holding
    a probe string only go to train."""
    rng = random.Random(spec["seed"])
    docs = unique_documents(spec, rng)
    rng.shuffle(docs)
    n_valid = round(len(docs) * VALID_FRACTION)
    train, valid = [], []
    for doc in docs:
        if len(valid) < n_valid and not contains_probe(doc):
            valid.append(doc)
        else:
            train.append(doc)
    return train, valid


def render(docs):
    """One sentence per line, one blank line between documents."""
    return "\n\n".join("\n".join(doc) for doc in docs) + "\n"


def validate(name, train, valid):
    """Structural checks, so a bad template edit fails loudly."""
    for doc in train + valid:
        assert 3 <= len(doc) <= 8, (name, doc)
        for s in doc:
            assert s and "{" not in s and "  " not in s, (name, s)
            assert s[0].isupper() and s[-1] in ".!?", (name, s)
    valid_text = render(valid)
    for probe in PROBE_SENTENCES:
        assert probe not in valid_text.split("\n"), (name, probe)
    for doc in valid:
        assert not contains_probe(doc), (name, doc)
    assert not {"\n".join(d) for d in train} & {"\n".join(d) for d in valid}


def generate():
    """Build every corpus and return {relative path: file text}."""
    out = {}
    for name in CORPORA:
        train, valid = build(load_spec(name))
        validate(name, train, valid)
        out[f"{name}/train.txt"] = render(train)
        out[f"{name}/valid.txt"] = render(valid)
    return out


def main(argv=None):
    """Write the corpus files, or with --check compare them and exit 1 on any
    difference (for CI: generated output must be committed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="regenerate in memory; exit 1 if files differ")
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        stale = [rel for rel, text in files.items()
                 if not (HERE / rel).is_file()
                 or (HERE / rel).read_text(encoding="utf-8") != text]
        for rel in stale:
            print(f"out of date: corpora/{rel}", file=sys.stderr)
        if stale:
            print("run: python corpora/generate.py", file=sys.stderr)
            return 1
        print("corpora are up to date")
        return 0
    for rel, text in files.items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote corpora/{rel}: {len(text.encode('utf-8')):,} bytes, "
              f"{len(text.split()):,} words")
    return 0


if __name__ == "__main__":
    sys.exit(main())
