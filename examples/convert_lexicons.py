#!/usr/bin/python3
"""Convert Debian's lexical resources into the plain formats robustxlt's loaders read.

Inputs (Debian packages):
  wordnet-base                  /usr/share/wordnet/{index,data}.{noun,verb,adj,adv}
  dict-freedict-eng-XXX         /usr/share/dictd/freedict-eng-XXX.{index,dict.dz}

Outputs, all UTF-8, written atomically (PATH.tmp, then renamed):

  DIR/en-XXX.txt  MUSE bilingual dictionary: one "source target" pair per line, one space between,
                  no header. Both sides are single tokens (no whitespace). A source with several
                  translations has one line per translation. Lines are sorted by source (code-point
                  order); translations of a source keep the order in which the dictionary gives them.
                  Identical pairs appear once.

  DIR/en_synonyms.json
                  {"word": ["neighbour", ...], ...}: keys sorted, one key per line. N(w) lists the other
                  single-word lemmas that share a WordNet synset with w (see "WordNet neighbours").

  DIR/en_synonyms.tsv
                  The same table in our TSV neighbour format:
                    - UTF-8, "\\n" line ends;
                    - a line starting with '#' is a comment (this script writes a short header);
                    - every other line is  word<TAB>neighbour1<TAB>neighbour2...  in key order;
                    - a word without neighbours is a line holding only the word (only with --keep-empty);
                    - fields are non-empty and hold no whitespace; there is no trailing tab and no blank line.
                  A word that would start with '#' is left out of both tables (it would read as a comment).

WordNet neighbours. For a lemma w (lowercased, single word: lemmas joined with '_' are multi-word and
skipped, hyphenated lemmas are kept) N(w) is built from the synsets that index.POS lists for w, in sense
order. Within a part of speech WordNet lists senses most frequent first; the parts of speech are merged
by the sense-tagged corpus counts in cntlist.rev (shipped with wordnet-base): the next sense taken is the
one, among the next unused sense of each part of speech, with the highest count, ties going to the lower
sense number, then to noun, verb, adjective, adverb. So "run" starts with its verb senses and "good" with
its adjective ones, and a cap does not keep only noun senses; without cntlist.rev all counts are 0 and
the parts of speech alternate by sense number. Within a synset, lemmas keep their order. Adjective
markers "(a)", "(p)", "(ip)" are removed, lemmas are lowercased, w itself and repeats are dropped, and
the list is cut at --max-neighbours. Lists are not symmetric.

FreeDict entries. The English source is the index headword; since the dictd index stores it lowercased
and stripped of punctuation ("cam-and-roller" becomes "camandroller"), the spelling is taken from the
entry's first line (the headword or one of its listed variants/abbreviations) when it normalises to the
index headword, so case and hyphens survive. Translation lines are the lines after the first that are not
examples (quoted), cross references or notes ("see:", "Synonyms:", "Note:"); sense numbers "1." and
grammar/usage notes in <>, [], {}, () are removed, alternatives are split on ',' and ';', and '~' (used
as a space in the Hindi data) counts as a space. Multi-word sides are skipped and counted. Tokens lose
surrounding punctuation; tokens that still hold ()[]{}<>/;," and similar, or no letter at all (numbers),
are dropped. Entries whose headword is the first word of a phrase that lost its spaces (told by an
unstressed pronunciation 4+ letters longer than the headword, see collapsed_phrase) are skipped.
Unicode hyphens U+2010/U+2011 become '-' and text is NFC-normalised, so that a word is spelled one way.

Usage:
  python3 examples/convert_lexicons.py --out DIR [--wordnet /usr/share/wordnet] [--freedict /usr/share/dictd]
      [--langs deu,fra,spa,hin,swh] [--max-neighbours 8] [--keep-empty]
  python3 examples/convert_lexicons.py --self-test

Exit status: 0 on success; 77 (message on stderr) when WordNet or every requested FreeDict dictionary is
missing, so a test harness can report "skipped"; 2 for bad arguments; 1 when validation fails.
"""

import argparse
import collections
import gzip
import json
import os
import re
import sys
import time
import unicodedata

EXIT_SKIP = 77

# ----------------------------------------------------------------------------------------------------------
# dictd index


DICTD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(DICTD_B64)}


def dictd_b64(s):
    """Decodes a dictd index number (base 64, most significant digit first)."""
    if not s:
        raise ValueError("empty dictd number")
    n = 0
    for c in s:
        try:
            n = n * 64 + _B64_VALUE[c]
        except KeyError:
            raise ValueError("bad dictd digit %r in %r" % (c, s)) from None
    return n


def is_metadata_headword(h):
    # dictfmt stores the database's own description under headwords "00-database-*" (index: "00database*").
    return h.startswith("00database") or h.startswith("00-database")


def dictd_normalise(s):
    """What dictfmt makes of a headword for its index: lowercase, alphanumerics and single spaces only."""
    kept = "".join(c for c in s.lower() if c.isalnum() or c.isspace())
    return " ".join(kept.split())


# ----------------------------------------------------------------------------------------------------------
# tokens

# Characters that mark markup or phrase structure rather than a word; a token still holding one after
# its surrounding punctuation is stripped is dropped.
BAD_CHARS = set('()[]{}<>/\\;,"|~_=+*#@%^&?!:…$')
# Unicode hyphens the dictionaries use inconsistently next to '-'.
HYPHENS = {"\u2010": "-", "\u2011": "-"}
# Invisible characters that only split a word for display.
INVISIBLE = {"\u00ad": "", "\u200b": "", "\ufeff": ""}
_CHAR_MAP = str.maketrans({**HYPHENS, **INVISIBLE})
# Zero-width (non-)joiners are part of Devanagari spelling, so they are allowed inside tokens.
JOINERS = {"\u200c", "\u200d"}


def _wordish(c):
    return unicodedata.category(c)[0] in "LNM"


def normalise_text(s):
    return unicodedata.normalize("NFC", s.translate(_CHAR_MAP))


def strip_punct(tok):
    """Removes leading/trailing characters that are not letters, digits or combining marks."""
    i, j = 0, len(tok)
    while i < j and not _wordish(tok[i]):
        i += 1
    while j > i and not _wordish(tok[j - 1]):
        j -= 1
    return tok[i:j]


def is_punct_only(tok):
    return not any(_wordish(c) for c in tok)


def clean_token(raw):
    """(token, None) for a usable single token, else (None, reason) with reason 'multiword' or 'invalid'."""
    parts = [p for p in normalise_text(raw).split() if not is_punct_only(p)]
    if not parts:
        return None, "invalid"
    if len(parts) > 1:
        return None, "multiword"
    tok = strip_punct(parts[0])
    if not tok:
        return None, "invalid"
    for c in tok:
        if c in BAD_CHARS:
            return None, "invalid"
        cat = unicodedata.category(c)
        if (cat[0] in "CZ" and c not in JOINERS) or c.isspace():
            return None, "invalid"
    if ".." in tok:  # elided phrases ("no...nunca"), not words
        return None, "invalid"
    if not any(unicodedata.category(c)[0] == "L" for c in tok):  # digits-only and other letterless tokens
        return None, "invalid"
    return tok, None


# ----------------------------------------------------------------------------------------------------------
# FreeDict entries

_PRON_RE = re.compile(r"\s/[^/\n]*/")
# A pronunciation inside a translation line (abbreviation variants: "PHPT,  /pˌiːˌeɪtʃ/"): slashes around
# text with IPA letters, so that "Laube/der Lack" or "a / b" are left alone.
_IPA_PRON_RE = re.compile(r"\s/[^/\n]*[ˈˌːəɪʊɒʌɛɔæɐθðʃʒŋɹɜɑɡ][^/\n]*/")
_ANGLE_RE = re.compile(r"<[^<>]*>")
_PAREN_RE = re.compile(r"\(([^()]*)\)")
_BRACKETS_RE = re.compile(r"<[^<>]*>|\[[^\[\]]*\]|\{[^{}]*\}|\([^()]*\)")
_SENSE_RE = re.compile(r"^\d+\.\s+")
# Lines that are not translations: cross references, synonyms and notes of the entry.
_LABEL_RE = re.compile(r"^(see also|see|synonyms?|antonyms?|notes?|cf\.?|compare)\s*:", re.IGNORECASE)


def headline_forms(headline):
    """Spellings the first line of an entry offers: the headword, then variants in parentheses.

    "No problem! /pron/ (NPB /pron/, ) (no prob /pron/)" -> ["No problem!", "NPB", "no prob", ...].
    """
    s = _PRON_RE.sub(" ", " " + headline.strip())
    s = _ANGLE_RE.sub(" ", s)
    forms = [" ".join(_PAREN_RE.sub(" ", s).split())]
    for group in _PAREN_RE.findall(s):
        forms.extend(" ".join(p.split()) for p in group.split(","))
    forms.append(" ".join(s.replace("(", " ").replace(")", " ").split()))  # "score (twenty)" as a whole
    return [f for f in forms if f]


def source_spelling(index_headword, headline):
    """The headline spelling that dictfmt turned into index_headword, else the index headword itself."""
    for form in headline_forms(headline):
        if dictd_normalise(form) == index_headword:
            return form
    return index_headword


_HEAD_PRON_RE = re.compile(r"^(.*?)\s/([^/\n]*)/")


def collapsed_phrase(headline):
    """True when the headline looks like a phrase whose spaces were lost and which was cut to its first word.

    The older (pre-stress-mark) entries of some dictionaries spell phrases without spaces and keep only the
    first word as the headword: "be /bəsliːp/" is "be asleep", "absolute /æbsəluːtruːlər/" is "absolute
    ruler". Their pronunciation, written without stress marks or spaces, is then much longer than the
    headword. Generated pronunciations carry stress marks and a space per word, so they are never judged.
    """
    m = _HEAD_PRON_RE.match(headline)
    if not m or any(c in m.group(2) for c in " ˈˌ"):
        return False
    pron = m.group(2).replace("ː", "")
    return len(pron) - len(m.group(1).strip()) >= 4


def entry_translations(entry_text):
    """Raw translation strings of an entry (before tokenisation), in the order the entry gives them."""
    out = []
    for line in entry_text.split("\n")[1:]:
        s = line.strip()
        if not s or s.startswith('"') or _LABEL_RE.match(s):
            continue  # blank, example sentence, cross reference or note
        s = _IPA_PRON_RE.sub(" ", _SENSE_RE.sub("", s)).replace("~", " ")
        prev = None
        while prev != s:  # innermost brackets first, so nested notes go too
            prev, s = s, _BRACKETS_RE.sub(" ", s)
        out.extend(a for a in re.split(r"[,;]", s) if a.strip())
    return out


def load_freedict(index_path, dict_path):
    with open(dict_path, "rb") as f:
        raw = f.read()
    # dictzip is gzip with an extra header field, so the whole file decompresses in one call.
    data = gzip.decompress(raw) if dict_path.endswith(".dz") else raw
    with open(index_path, "r", encoding="utf-8") as f:
        index = f.read().split("\n")
    return index, data


def convert_freedict(index_lines, data):
    """Returns (pairs in sorted order, counters)."""
    stats = collections.Counter()
    seen = set()
    pairs = []
    entry_cache = {}
    for line in index_lines:
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            stats["bad index lines"] += 1
            continue
        head, off, length = fields
        if is_metadata_headword(head):
            stats["metadata entries"] += 1
            continue
        if not head.strip():
            stats["empty headwords"] += 1  # symbol headwords ("$", "(") that normalise to nothing
            continue
        key = (off, length)
        if key not in entry_cache:
            start, n = dictd_b64(off), dictd_b64(length)
            try:
                text = data[start:start + n].decode("utf-8")
            except UnicodeDecodeError:
                text = None
            entry_cache[key] = text
        text = entry_cache[key]
        if text is None:
            stats["undecodable entries"] += 1
            continue
        headline = text.split("\n", 1)[0]
        if collapsed_phrase(headline):
            stats["collapsed-phrase entries"] += 1
            continue
        src_raw = source_spelling(head, headline).replace("_", " ").replace("~", " ")
        src, why = clean_token(src_raw)
        if src is None:
            stats["multi-word sources" if why == "multiword" else "invalid sources"] += 1
            continue
        translations = entry_translations(text)
        if not translations:
            stats["entries without translation"] += 1
        for t in translations:
            tgt, why = clean_token(t)
            if tgt is None:
                stats["multi-word targets" if why == "multiword" else "invalid targets"] += 1
                continue
            if (src, tgt) in seen:
                stats["duplicate pairs"] += 1
                continue
            seen.add((src, tgt))
            pairs.append((src, tgt))
    pairs.sort(key=lambda p: p[0])  # stable: order of appearance within a source
    return pairs, stats


# ----------------------------------------------------------------------------------------------------------
# WordNet

WN_POS = ("noun", "verb", "adj", "adv")
_ADJ_MARKER_RE = re.compile(r"\((a|p|ip)\)$")


def parse_data_line(line):
    """Lemmas of one data.POS line, in synset order, adjective markers removed, case kept."""
    f = line.split(" ")
    w_cnt = int(f[3], 16)
    if len(f) < 4 + 2 * w_cnt or "|" in f[4:4 + 2 * w_cnt]:
        raise ValueError("data line %r lists fewer than %d lemmas" % (f[0], w_cnt))
    return [_ADJ_MARKER_RE.sub("", f[4 + 2 * i]) for i in range(w_cnt)]


def parse_index_line(line):
    """(lemma, [synset offsets in sense order]) of one index.POS line."""
    f = line.split()
    lemma, synset_cnt, p_cnt = f[0], int(f[2]), int(f[3])
    offsets = f[4 + p_cnt + 2:]  # skip pointer symbols, sense_cnt and tagsense_cnt
    if len(offsets) != synset_cnt:
        raise ValueError("index line of %r lists %d offsets, expected %d" % (lemma, len(offsets), synset_cnt))
    return lemma, [int(o) for o in offsets]


_SS_TYPE_POS = {"1": "noun", "2": "verb", "3": "adj", "4": "adv", "5": "adj"}  # 5 = adjective satellite


def read_sense_counts(path):
    """(lemma, pos, sense number) -> tag count, from cntlist.rev lines "lemma%ss_type:... number count"."""
    counts = {}
    if not os.path.isfile(path):
        return counts
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            f3 = line.split()
            if len(f3) != 3 or "%" not in f3[0]:
                continue
            lemma, rest = f3[0].rsplit("%", 1)
            pos = _SS_TYPE_POS.get(rest[:1])
            if pos:
                key = (lemma.lower(), pos, int(f3[1]))
                counts[key] = counts.get(key, 0) + int(f3[2])
    return counts


def merge_senses(lemma, by_pos, counts):
    """[(pos, synset offset)] of lemma: each part of speech in sense order, merged by tag counts."""
    nxt = {pos: 0 for pos in by_pos}
    out = []
    while True:
        best = None
        for i, pos in enumerate(WN_POS):
            if pos not in by_pos or nxt[pos] >= len(by_pos[pos]):
                continue
            rank = nxt[pos]
            key = (-counts.get((lemma, pos, rank + 1), 0), rank, i)
            if best is None or key < best[0]:
                best = (key, pos)
        if best is None:
            return out
        pos = best[1]
        out.append((pos, by_pos[pos][nxt[pos]]))
        nxt[pos] += 1


def wordnet_files(wordnet_dir):
    return [os.path.join(wordnet_dir, "%s.%s" % (kind, pos)) for pos in WN_POS for kind in ("index", "data")]


def build_wordnet_table(wordnet_dir, max_neighbours, keep_empty):
    senses = collections.defaultdict(dict)  # lemma -> pos -> [offsets]
    data = {}
    for pos in WN_POS:
        with open(os.path.join(wordnet_dir, "data." + pos), "rb") as f:
            data[pos] = f.read()
        with open(os.path.join(wordnet_dir, "index." + pos), "r", encoding="utf-8") as f:
            for line in f:
                if line.startswith("  ") or not line.strip():
                    continue  # licence header lines start with two spaces
                lemma, offsets = parse_index_line(line)
                senses[lemma][pos] = offsets

    counts = read_sense_counts(os.path.join(wordnet_dir, "cntlist.rev"))
    synset_cache = {}

    def synset(pos, off):
        key = (pos, off)
        if key not in synset_cache:
            buf = data[pos]
            end = buf.index(b"\n", off)
            line = buf[off:end].decode("utf-8")
            if int(line.split(" ", 1)[0]) != off:
                raise ValueError("data.%s: no synset at byte offset %d" % (pos, off))
            synset_cache[key] = [l.lower() for l in parse_data_line(line)]
        return synset_cache[key]

    table = {}
    stats = collections.Counter()
    for lemma in sorted(senses):
        if "_" in lemma:
            stats["multi-word lemmas"] += 1
            continue
        if lemma.startswith("#") or any(c.isspace() for c in lemma):
            stats["invalid lemmas"] += 1
            continue
        neighbours = []
        for pos, off in merge_senses(lemma, senses[lemma], counts):
            for other in synset(pos, off):
                if "_" in other or other == lemma or other in neighbours or other.startswith("#"):
                    continue
                neighbours.append(other)
            if len(neighbours) >= max_neighbours:
                break
        neighbours = neighbours[:max_neighbours]
        if neighbours or keep_empty:
            table[lemma] = neighbours
        else:
            stats["words without neighbours"] += 1
    return table, stats


# ----------------------------------------------------------------------------------------------------------
# output


def _has_space(s):
    return any(c.isspace() for c in s) or not s


def muse_text(pairs):
    return "".join("%s %s\n" % p for p in pairs)


def json_text(table):
    # One key per line keeps the file diffable; keys sorted for byte-identical reruns.
    items = ["%s: %s" % (json.dumps(k, ensure_ascii=False), json.dumps(table[k], ensure_ascii=False))
             for k in sorted(table)]
    return "{\n" + ",\n".join(items) + "\n}\n" if items else "{}\n"


def tsv_text(table, header):
    lines = ["# " + h for h in header]
    lines.extend("\t".join([k] + table[k]) for k in sorted(table))
    return "\n".join(lines) + "\n"


def validate_muse(text):
    for n, line in enumerate(text.split("\n")[:-1], 1):
        f = line.split(" ")
        if len(f) != 2 or any(_has_space(x) for x in f):
            raise ValueError("MUSE line %d is not 'source target': %r" % (n, line))


def validate_table(table, json_s, tsv_s):
    for k, v in table.items():
        for w in [k] + v:
            if _has_space(w) or w.startswith("#"):
                raise ValueError("neighbour table holds a bad word %r (key %r)" % (w, k))
    if json.loads(json_s) != table:
        raise ValueError("JSON output does not read back as the table")
    back = {}
    for line in tsv_s.split("\n")[:-1]:
        if line.startswith("#"):
            continue
        f = line.split("\t")
        if any(_has_space(x) for x in f):
            raise ValueError("TSV line has an empty or spaced field: %r" % line)
        back[f[0]] = f[1:]
    if back != table:
        raise ValueError("TSV output does not read back as the table")


def write_atomic(path, text):
    blob = text.encode("utf-8")  # strict: raises on lone surrogates
    blob.decode("utf-8")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def skipped_text(stats):
    parts = ["%d %s" % (v, k) for k, v in sorted(stats.items()) if v]
    return "; skipped: " + ", ".join(parts) if parts else "; skipped: none"


# ----------------------------------------------------------------------------------------------------------
# self-test


def self_test():
    assert dictd_b64("A") == 0 and dictd_b64("B") == 1 and dictd_b64("/") == 63
    assert dictd_b64("BA") == 64 and dictd_b64("Bq") == 64 + 42 and dictd_b64("CAA") == 2 * 4096
    for bad in ("", "A-"):
        try:
            dictd_b64(bad)
            raise AssertionError("accepted %r" % bad)
        except ValueError:
            pass

    assert dictd_normalise("cam-and-roller steering gear") == "camandroller steering gear"
    assert source_spelling("camandroller", "cam-and-roller /kˈam and ɹˈəʊlə/") == "cam-and-roller"
    assert source_spelling("philippines", "Philippines /filipiːnz/") == "Philippines"
    assert source_spelling("fo", "folio /fˈəʊlɪˌəʊ/ (fo /fˈəʊ/, ) (2° /tˈuː/)") == "fo"
    assert source_spelling("2", "folio /fˈəʊlɪˌəʊ/ (fo /fˈəʊ/, ) (2° /tˈuː/)") == "2°"
    assert source_spelling("check inout", "check in/out /tʃˈɛk/ <PhrV>") == "check in/out"
    assert collapsed_phrase("be /bəsliːp/") and collapsed_phrase("absolute /æbsəluːtruːlər/")
    assert not collapsed_phrase("Nigerian /naidʒiəriən/") and not collapsed_phrase("good /gud/")
    assert not collapsed_phrase("abstractionism /ˌabstɹˈakʃənˌɪzəm/")
    assert not collapsed_phrase("be sick /biː sˈɪk/")
    assert is_metadata_headword("00databaseinfo") and is_metadata_headword("00-database-url")

    deu = ("good /ɡˈʊd/\n"
           "Gute <neut>, Gutes; lieb [coll.], etw. Gutes tun\n"
           "      \"be up to no good\"  - nichts Gutes im Schilde führen\n"
           "   Synonyms: {well-being}, {welfare}\n"
           " see: {do good}\n"
           "         Note: Note 2; Note 5\n"
           " [Am.] Dollar-Zeichen <neut>$\n"
           "Folio <neut> [print] fo,  /fˈəʊ/ 2°,  /tˈuː/\n")
    got = [clean_token(t) for t in entry_translations(deu)]
    assert [t for t, _ in got] == ["Gute", "Gutes", "lieb", None, "Dollar-Zeichen", None, None], got
    assert got[3] == (None, "multiword")
    hin = ("frisk /fɹˈɪsk/ <VI>\n"
           "1. तलाशी~करना{किसी~व्यक्ति}\n"
           "      \"The custom officer frisked the passengers.\"\n"
           "2. उछलना-कूदना[पशुओं~का]\n"
           "3. {रेखागणित}सर्वागसम।\n")
    got = [clean_token(t)[0] for t in entry_translations(hin)]
    assert got == [None, "उछलना-कूदना", "सर्वागसम"], got
    fra = "surmise /səːmaiz/\n1. conjecturer, se douter de\n2. chou\u2010fleur\n"
    assert [clean_token(t)[0] for t in entry_translations(fra)] == ["conjecturer", None, "chou-fleur"]
    assert clean_token("(1995)") == (None, "invalid") and clean_token("a/b") == (None, "invalid")
    assert clean_token("«Haus»") == ("Haus", None) and clean_token("hace...") == ("hace", None)
    assert clean_token("l'eau") == ("l'eau", None) and clean_token("no...nunca") == (None, "invalid")

    idx = "good a 21 5 ! & ^ = + 21 14 01123148 00106020 01129977"
    try:
        parse_index_line(idx)
        raise AssertionError("accepted an index line with missing offsets")
    except ValueError:
        pass
    assert parse_index_line("good r 2 1 ; 2 2 00011093 00057388\n") == ("good", [11093, 57388])
    data = ("00020103 00 s 03 outback(a) 0 remote 0 back_of_beyond(ip) 1 003 & 00019874 a 0000 "
            "+ 04718999 n 0101 | inaccessible and sparsely populated")
    assert parse_data_line(data) == ["outback", "remote", "back_of_beyond"]
    data = ("02958343 06 n 05 car 0 auto 0 automobile 0 machine 1 motorcar 0 002 @ 03791235 n 0000 "
            "+ 10279018 n 0401 | a motor vehicle with four wheels")
    assert parse_data_line(data) == ["car", "auto", "automobile", "machine", "motorcar"]
    try:
        parse_data_line("02958343 06 n 0b car 0 auto 0 | truncated")
        raise AssertionError("accepted a data line with too few lemmas")
    except ValueError:
        pass

    by_pos = {"noun": [10, 11, 12], "verb": [20, 21], "adj": [30]}
    counts = {("run", "verb", 1): 50, ("run", "verb", 2): 9, ("run", "noun", 1): 10}
    assert merge_senses("run", by_pos, counts) == [
        ("verb", 20), ("noun", 10), ("verb", 21), ("adj", 30), ("noun", 11), ("noun", 12)]
    assert merge_senses("x", by_pos, {}) == [
        ("noun", 10), ("verb", 20), ("adj", 30), ("noun", 11), ("verb", 21), ("noun", 12)]

    table = {"big": ["large", "heavy"], "car": [], "élan": ["dash"]}
    j, t = json_text(table), tsv_text(table, ["test"])
    validate_table(table, j, t)
    assert t == "# test\nbig\tlarge\theavy\ncar\n\u00e9lan\tdash\n"
    validate_muse(muse_text([("house", "Haus"), ("house", "Heim")]))
    print("self-test passed")
    return 0


# ----------------------------------------------------------------------------------------------------------
# main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", help="output directory (created if missing)")
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    ap.add_argument("--freedict", default="/usr/share/dictd")
    ap.add_argument("--langs", default="deu,fra,spa,hin,swh", help="comma-separated FreeDict codes (eng-XXX)")
    ap.add_argument("--max-neighbours", type=int, default=8)
    ap.add_argument("--keep-empty", action="store_true", help="also list words without neighbours")
    ap.add_argument("--self-test", action="store_true", help="run internal checks and exit")
    args = ap.parse_args(argv)

    if args.self_test:
        return self_test()
    if not args.out:
        ap.error("--out is required")
    if args.max_neighbours < 1:
        ap.error("--max-neighbours must be >= 1")
    langs = []
    for code in args.langs.split(","):
        code = code.strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]+", code or "-"):
            ap.error("bad language code %r in --langs" % code)
        if code and code not in langs:
            langs.append(code)
    if not langs:
        ap.error("--langs names no language")

    # Check every input before writing anything, so a missing package leaves no partial output.
    missing_wn = [p for p in wordnet_files(args.wordnet) if not os.path.isfile(p)]
    dicts, missing_langs = {}, []
    for code in langs:
        base = os.path.join(args.freedict, "freedict-eng-%s" % code)
        index = base + ".index"
        data = next((p for p in (base + ".dict.dz", base + ".dict") if os.path.isfile(p)), None)
        if os.path.isfile(index) and data:
            dicts[code] = (index, data)
        else:
            missing_langs.append(code)
    if missing_wn:
        print("convert_lexicons: WordNet not found (missing %s); install wordnet-base" % ", ".join(missing_wn),
              file=sys.stderr)
        return EXIT_SKIP
    if not dicts:
        print("convert_lexicons: no FreeDict dictionary found in %s for %s; install dict-freedict-eng-XXX"
              % (args.freedict, ",".join(langs)), file=sys.stderr)
        return EXIT_SKIP
    for code in missing_langs:
        print("convert_lexicons: warning: freedict-eng-%s not found in %s, skipping it" % (code, args.freedict),
              file=sys.stderr)

    os.makedirs(args.out, exist_ok=True)
    t0 = time.monotonic()

    table, wn_stats = build_wordnet_table(args.wordnet, args.max_neighbours, args.keep_empty)
    header = [
        "English WordNet synonyms: word<TAB>neighbour<TAB>... (neighbours share a synset with the word)",
        "from %s, sense order (parts of speech merged by cntlist.rev counts), at most %d neighbours%s" % (
            args.wordnet, args.max_neighbours, ", words without neighbours kept" if args.keep_empty else ""),
    ]
    j, t = json_text(table), tsv_text(table, header)
    validate_table(table, j, t)
    n_pairs = sum(len(v) for v in table.values())
    for name, text in (("en_synonyms.json", j), ("en_synonyms.tsv", t)):
        path = os.path.join(args.out, name)
        write_atomic(path, text)
        print("%s: %d entries, %d unique sources, %d neighbour pairs%s"
              % (path, len(table), len(table), n_pairs, skipped_text(wn_stats)))

    for code in langs:
        if code not in dicts:
            continue
        index_lines, data = load_freedict(*dicts[code])
        pairs, stats = convert_freedict(index_lines, data)
        path = os.path.join(args.out, "en-%s.txt" % code)
        text = muse_text(pairs)
        validate_muse(text)
        if not pairs:
            print("convert_lexicons: warning: %s has no entries" % path, file=sys.stderr)
        write_atomic(path, text)
        print("%s: %d lines, %d unique sources%s"
              % (path, len(pairs), len({s for s, _ in pairs}), skipped_text(stats)))

    print("convert_lexicons: done in %.1f s" % (time.monotonic() - t0), file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError) as e:
        print("convert_lexicons: error: %s" % e, file=sys.stderr)
        sys.exit(1)
