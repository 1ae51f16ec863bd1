"""Training data for ferrum-tiny: the King James Bible (public domain) as Debian's
bible-kjv-text ships it, split into books, chapters and verses, and turned into

- plain documents: one chapter each ("Genesis 1", a blank line, one verse per line);
- chat documents (ChatML): questions answered with verses, so that `ferrum run` answers
  in the style of the text. Every answer is a verse of the training books (or, for "who are
  you", one fixed sentence of ours).

Pure Python (no torch), so it can be checked anywhere:
    python3 tools/tiny_data.py --kjv .carry/tinydata/kjv.txt   # prints statistics
"""
import argparse
import collections
import os
import random
import re
import shutil
import subprocess

# The last book is the held-out test text; the epistles of John and Jude validate (early
# stopping); neither is trained on.
TEST_BOOKS = ("Revelation",)
VALID_BOOKS = ("1 John", "2 John", "3 John", "Jude")

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [END_OF_TEXT, IM_START, IM_END]

SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are ferrum-tiny, a small language model.",
    "Answer in the words of the King James Bible.",
]
TOPIC_QUESTIONS = [
    "Tell me about {w}.", "What does the Bible say about {w}?", "What is {w}?",
    "Speak to me of {w}.", "Give me a verse about {w}.", "What is written about {w}?",
    "I want to hear about {w}.", "{W}?",
]
NAME_QUESTIONS = ["Who was {w}?", "Tell me about {w}.", "What did {w} do?", "Who is {w}?"]
REFERENCE_QUESTIONS = ["Quote {ref}.", "What does {ref} say?", "Read me {ref}.", "{ref}"]
NEXT_QUESTIONS = ["What comes after \"{v}\"?", "Continue: {v}", "{v} And then?"]
GREETINGS = ["Hello", "Hello!", "Hi", "Hi there", "Good morning", "Greetings", "Hey",
             "Peace be with you."]
IDENTITY_QUESTIONS = ["Who are you?", "What are you?", "What is your name?",
                      "Tell me about yourself."]
IDENTITY_ANSWER = ("I am ferrum-tiny, a small language model that ships with ferrum. "
                   "I was trained on the King James Bible, and I speak in its words.")

HEADER = re.compile(r"^((?:[1-3] )?[A-Z][A-Za-z ]*?) (\d+)$")
VERSE = re.compile(r"^\s+(\d+) (.*)$")
# Topic words should be things, not doings: skip the common verb and adverb endings.
VERB_ENDING = re.compile(r"(eth|est|ed|ing|ly)$")


def extract_kjv(dest):
    """Writes the whole KJV as the `bible` program (package bible-kjv) prints it."""
    if not shutil.which("bible"):
        raise SystemExit("`bible` not found: apt-get install bible-kjv (or pass --kjv FILE)")
    with open(dest, "w") as f:
        subprocess.run(["bible", "-l0", "gen1:1-rev22:21"], stdout=f, check=True)


def parse_kjv(path):
    """Returns [(book, chapter, [verse text, ...]), ...] in canonical order."""
    chapters = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            m = VERSE.match(line)
            if m:
                if not chapters:
                    raise ValueError(f"verse before any chapter header: {line!r}")
                chapters[-1][2].append(" ".join(m.group(2).split()))
                continue
            m = HEADER.match(line)
            if not m:
                raise ValueError(f"unrecognised line in {path}: {line!r}")
            chapters.append((m.group(1), int(m.group(2)), []))
    return chapters


def chapter_text(book, chapter, verses):
    return f"{book} {chapter}\n\n" + "\n".join(verses) + "\n"


def split_chapters(chapters):
    train = [c for c in chapters if c[0] not in TEST_BOOKS + VALID_BOOKS]
    valid = [c for c in chapters if c[0] in VALID_BOOKS]
    test = [c for c in chapters if c[0] in TEST_BOOKS]
    return train, valid, test


def render_chat(messages):
    """The ChatML text that tokenizer_config.json's chat_template renders."""
    return "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)


CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)


class ChatMaker:
    """Builds question/answer turns from the training verses."""

    def __init__(self, chapters, rng):
        self.rng = rng
        self.verses = [(b, c, i, v) for b, c, vs in chapters for i, v in enumerate(vs)]
        counts = collections.Counter(w.lower() for *_, v in self.verses for w in words(v))
        common = {w for w, _ in counts.most_common(400)}
        # Topic words: not among the most common, seen a few times, long enough to mean something.
        self.topic_ok = lambda w: (w.lower() not in common and 3 <= counts[w.lower()] and len(w) >= 4
                                   and not VERB_ENDING.search(w))
        self.peace = [v for *_, v in self.verses if re.search(r"\b(peace|grace) be\b", v, re.I)]

    def answer_from(self, idx):
        b, c, i, v = self.verses[idx]
        if self.rng.random() < 0.4 and idx + 1 < len(self.verses) and self.verses[idx + 1][:2] == (b, c):
            v = v + " " + self.verses[idx + 1][3]
        return v

    def turn(self):
        """One (question, answer) pair of a random kind."""
        r = self.rng.random()
        idx = self.rng.randrange(len(self.verses))
        b, c, i, v = self.verses[idx]
        if r < 0.55:
            candidates = [(w, k) for k, w in enumerate(words(v)) if self.topic_ok(w)]
            if candidates:
                w, k = self.rng.choice(candidates)
                if w[0].isupper() and k > 0 and not w.isupper():
                    q = self.rng.choice(NAME_QUESTIONS).format(w=w)
                else:
                    w = w.lower()
                    q = self.rng.choice(TOPIC_QUESTIONS).format(w=w, W=w.capitalize())
                return q, self.answer_from(idx)
        if r < 0.75:
            ref = f"{b} {c}:{i + 1}"
            return self.rng.choice(REFERENCE_QUESTIONS).format(ref=ref), v
        if r < 0.93 and idx + 1 < len(self.verses) and self.verses[idx + 1][:2] == (b, c):
            return self.rng.choice(NEXT_QUESTIONS).format(v=v), self.verses[idx + 1][3]
        if r < 0.97 and self.peace:
            return self.rng.choice(GREETINGS), self.rng.choice(self.peace)
        return self.rng.choice(IDENTITY_QUESTIONS), IDENTITY_ANSWER

    def conversation(self):
        messages = []
        if self.rng.random() < 0.3:
            messages.append({"role": "system", "content": self.rng.choice(SYSTEM_PROMPTS)})
        for _ in range(2 if self.rng.random() < 0.2 else 1):
            q, a = self.turn()
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return render_chat(messages)


def words(text):
    return re.findall(r"[A-Za-z]+", text)


def build_documents(train_chapters, num_chats, seed):
    """Plain chapters + chat conversations, shuffled with the seed. Each document is later
    followed by <|endoftext|> in the token stream."""
    rng = random.Random(seed)
    docs = [chapter_text(*c) for c in train_chapters]
    maker = ChatMaker(train_chapters, rng)
    docs += [maker.conversation() for _ in range(num_chats)]
    rng.shuffle(docs)
    return docs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kjv", required=True, help="KJV text as `bible -l0 gen1:1-rev22:21` prints it")
    ap.add_argument("--extract", action="store_true", help="write --kjv with the `bible` program first")
    ap.add_argument("--chats", type=int, default=12000)
    args = ap.parse_args()
    if args.extract:
        os.makedirs(os.path.dirname(os.path.abspath(args.kjv)), exist_ok=True)
        extract_kjv(args.kjv)
    chapters = parse_kjv(args.kjv)
    train, valid, test = split_chapters(chapters)
    nverses = lambda cs: sum(len(c[2]) for c in cs)
    print(f"chapters {len(chapters)} verses {nverses(chapters)}; train {len(train)}/{nverses(train)}"
          f" valid {len(valid)}/{nverses(valid)} test {len(test)}/{nverses(test)}")
    docs = build_documents(train, args.chats, seed=1234)
    chats = [d for d in docs if d.startswith(IM_START)]
    print(f"documents {len(docs)}, chats {len(chats)}, characters {sum(map(len, docs))}")
    for d in chats[:6]:
        print("----\n" + d)


if __name__ == "__main__":
    main()
