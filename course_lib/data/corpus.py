"""A small generated English world for masked-language-model pretraining (chapter 8).

    >>> world = World()
    >>> anna = world.people["anna"]
    >>> anna.city, anna.country, anna.job, anna.pet
    ('berlin', 'germany', 'teacher', 'horse')
    >>> [name for name, p in world.people.items() if p.city == "paris" or p.job == "doctor"]
    ['tom', 'omar']
    >>> make_corpus(n_docs=1, split="train").documents[0][:3]
    ['tom has a house in paris .', 'tom eats a plum .', 'the plum is purple .']

Why generate text: nothing may be downloaded at run time, and a tiny model
trained for minutes on a CPU learns nothing measurable from a few megabytes of
real prose. This world is small and *consistent*, so masked-language modelling
has structure to find, and we can name what each prediction needs:

    facts      people live in fixed cities and have fixed jobs and pets; cities
               lie in countries; animals make their sounds; fruit and things have
               colours; weather nouns take their verbs and adverbs
               ("the rain falls heavily", the English twin of the syllabus
               example "雨 が 激しく 降る"); the days of the week follow each other;
               small sums ("two plus three is five")
    agreement  "the dog barks" / "the dogs bark", "she ... her" / "he ... his"
    context    within a document: "anna gives the ball to tom . now tom has the ball ."

A document is one short story about one person: consecutive, coherent
sentences, so next-sentence prediction (NSP) has something to detect (a random
sentence from another story usually names someone else).

Splits. The world (who lives where, ...) is fixed by ``world_seed``; the stories
are drawn with ``seed``. ``split="heldout"`` draws from another seed stream and,
in addition, may use *reserved phrasings*: for every person one of the three
ways of saying where they live (and for every fruit one way of saying its
colour) never appears in the training split. ``unseen_combinations()`` lists
those sentences: they test whether a fact learnt in one phrasing is found in
another.

Fine-tuning task (``topic_task``): label a sentence by what it talks about,
``animal``, ``fruit`` or ``job``, e.g. "omar draws a cook ." -> job (label 2). The
templates are new (never in the stories), and the words are split in two: the
labelled training sentences use half the animals, fruits and jobs, the test
sentences only the other half. A model can only label "owl" correctly without
ever having seen it labelled if pretraining put "owl" near "cat" and "dog".

The word lists, reviewed as data (issue 25). Every list and category was read for
membership and for the grammar of the sentences it is put into; ``tests/test_data_review.py``
checks the grammar over generated text:

    grammar    "one" takes the singular ("has one cherry", never "one cherries"), any other
               number the plural; "a"/"an" follows the sound of the next word (``article``:
               "an owl", "a university", "an hour"); a singular subject takes the verb in
               -s ("the dog barks"), a plural one the bare verb ("the dogs bark"); plurals
               are the real ones ("wolves", "sheep", "cherries", "tomatoes").
    membership names are names (six female, six male, matching she/her and he/his);
               every city lies in the country given (london: england, a country of the
               UK; seoul: korea, i.e. South Korea); every job has a real workplace; every
               animal makes the sound given, and every pet is an animal people keep.
    known oddities, kept so that the corpus (and chapter 8's trained model) stays as it
               is: ``carrot`` is a vegetable in ``FRUIT`` (so the topic task calls a carrot a
               fruit); ``THINGS`` mixes things with a colour and ``night``, whose "colour"
               is "dark", and its walk sentences can read "walk by the milk"; a pet owl
               or bee is unusual (the bee is never a pet: ``PETS`` leaves it out).

Licence: this module is MIT-licensed like the rest of course_lib. The text it
generates is original (written by this program from the word lists below) and
dedicated to the public domain (CC0 1.0).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterator, Literal, Sequence

__all__ = [
    "World",
    "Person",
    "article",
    "count_noun",
    "Corpus",
    "make_corpus",
    "vocabulary",
    "NUMBERS",
    "WEEKDAYS",
    "TOPICS",
    "TopicTask",
    "topic_task",
]

Split = Literal["train", "heldout"]

# --------------------------------------------------------------------------- the word lists

FEMALE = ["anna", "maria", "sofia", "emma", "lucy", "mia"]
MALE = ["tom", "ben", "leo", "omar", "kenji", "paul"]

CITY_COUNTRY = {
    "paris": "france", "rome": "italy", "tokyo": "japan", "berlin": "germany", "madrid": "spain",
    "london": "england", "cairo": "egypt", "lima": "peru", "oslo": "norway", "delhi": "india",
    "seoul": "korea", "athens": "greece",
}  # fmt: skip

JOB_PLACE = {
    "doctor": "hospital", "teacher": "school", "baker": "bakery", "farmer": "farm", "pilot": "airport",
    "singer": "theatre", "painter": "studio", "driver": "garage", "cook": "kitchen", "writer": "library",
    "builder": "site", "banker": "bank",
}  # fmt: skip

# animal: (plural, sound verb for one, sound verb for many)
ANIMALS = {
    "cat": ("cats", "meows", "meow"), "dog": ("dogs", "barks", "bark"), "cow": ("cows", "moos", "moo"),
    "duck": ("ducks", "quacks", "quack"), "lion": ("lions", "roars", "roar"), "owl": ("owls", "hoots", "hoot"),
    "horse": ("horses", "neighs", "neigh"), "frog": ("frogs", "croaks", "croak"), "bee": ("bees", "buzzes", "buzz"),
    "pig": ("pigs", "oinks", "oink"), "wolf": ("wolves", "howls", "howl"), "sheep": ("sheep", "bleats", "bleat"),
}  # fmt: skip
PETS = ["cat", "dog", "duck", "horse", "frog", "pig", "owl", "sheep"]  # animals a person may keep

# fruit: (plural, colour)
FRUIT = {
    "banana": ("bananas", "yellow"), "lemon": ("lemons", "yellow"), "cherry": ("cherries", "red"),
    "tomato": ("tomatoes", "red"), "strawberry": ("strawberries", "red"), "lime": ("limes", "green"),
    "pear": ("pears", "green"), "carrot": ("carrots", "orange"), "pumpkin": ("pumpkins", "orange"),
    "plum": ("plums", "purple"), "grape": ("grapes", "purple"), "coconut": ("coconuts", "brown"),
}  # fmt: skip
# other things with a colour (singular, nouns without plural use in the stories)
THINGS = {"sky": "blue", "sea": "blue", "grass": "green", "snow": "white", "milk": "white", "coal": "black", "night": "dark"}

# weather noun: (verb, adverb); the adverb is what the noun "does"
WEATHER = {
    "rain": ("falls", "heavily"), "snow": ("falls", "softly"), "wind": ("blows", "strongly"),
    "sun": ("shines", "brightly"), "thunder": ("rolls", "loudly"), "fog": ("drifts", "slowly"),
}  # fmt: skip

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve"]  # fmt: skip
OBJECTS = ["ball", "book", "hat", "cup", "kite", "map", "key", "lamp", "clock", "bag"]
OBJECT_COLOURS = ["red", "blue", "green", "yellow", "white", "black"]

#: Words whose first letter misleads "a"/"an": a vowel letter read as a consonant sound, or a
#: silent h before a vowel sound. None occurs in these lists today; the rule is general.
CONSONANT_SOUND_VOWELS = ("one", "once", "uni", "use", "usu", "eu", "ewe", "ukulele")
VOWEL_SOUND_H = ("hour", "honest", "honour", "honor", "heir")


def article(word: str) -> str:
    """ "a" or "an" for ``word``, by its first sound.

    >>> [f"{article(w)} {w}" for w in ("owl", "dog", "hour", "university", "egg", "one")]
    ['an owl', 'a dog', 'an hour', 'a university', 'an egg', 'a one']
    """
    w = word.lower()
    if w.startswith(VOWEL_SOUND_H):
        return "an"
    if w.startswith(CONSONANT_SOUND_VOWELS):
        return "a"
    return "an" if w[:1] in ("a", "e", "i", "o", "u") else "a"


def count_noun(number: int, singular: str, plural: str) -> str:
    """ "one cherry", "two cherries": the number word, with the noun agreeing.

    >>> count_noun(1, "cherry", "cherries"), count_noun(3, "cherry", "cherries")
    ('one cherry', 'three cherries')
    """
    return f"{NUMBERS[number]} {singular if number == 1 else plural}"


# Three ways to say where a person lives; per person one is reserved for the held-out split.
LIVES_TEMPLATES = ("{p} lives in {city} .", "the home of {p} is in {city} .", "{p} has a house in {city} .")
# Three ways to say a fruit's colour; per fruit one is reserved for the held-out split.
COLOUR_TEMPLATES = ("the {f} is {c} .", "{fs} are {c} .", "a ripe {f} is {c} .")  # "ripe": never "an"


@dataclass(frozen=True)
class Person:
    name: str
    female: bool
    city: str
    job: str
    pet: str

    @property
    def subject(self) -> str:  # she / he
        return "she" if self.female else "he"

    @property
    def possessive(self) -> str:  # her / his
        return "her" if self.female else "his"

    @property
    def country(self) -> str:
        return CITY_COUNTRY[self.city]


@dataclass
class World:
    """The fixed facts: each person's city, job and pet, and which phrasings are reserved.

    Deterministic given ``world_seed``: the same seed gives the same world on every machine.
    """

    world_seed: int = 0
    people: dict[str, Person] = field(init=False)
    reserved_lives: dict[str, int] = field(init=False)  # person -> index into LIVES_TEMPLATES kept for held-out
    reserved_colour: dict[str, int] = field(init=False)  # fruit -> index into COLOUR_TEMPLATES kept for held-out

    def __post_init__(self):
        rng = random.Random(f"world-{self.world_seed}")
        cities, jobs = list(CITY_COUNTRY), list(JOB_PLACE)
        names = [(n, True) for n in FEMALE] + [(n, False) for n in MALE]
        # one person per city and per job, so "[MASK] lives in paris" has one right answer
        rng.shuffle(cities)
        rng.shuffle(jobs)
        self.people = {
            name: Person(name, female, cities[i], jobs[i], rng.choice(PETS))
            for i, (name, female) in enumerate(names)
        }
        self.reserved_lives = {name: rng.randrange(len(LIVES_TEMPLATES)) for name in self.people}
        self.reserved_colour = {f: rng.randrange(len(COLOUR_TEMPLATES)) for f in FRUIT}

    # ------------------------------------------------------------------ phrasings

    def lives_sentence(self, person: Person, rng: random.Random, split: Split) -> str:
        choices = self._allowed(len(LIVES_TEMPLATES), self.reserved_lives[person.name], split)
        return LIVES_TEMPLATES[rng.choice(choices)].format(p=person.name, city=person.city)

    def colour_sentence(self, fruit: str, rng: random.Random, split: Split) -> str:
        choices = self._allowed(len(COLOUR_TEMPLATES), self.reserved_colour[fruit], split)
        plural, colour = FRUIT[fruit]
        return COLOUR_TEMPLATES[rng.choice(choices)].format(f=fruit, fs=plural, c=colour)

    @staticmethod
    def _allowed(n: int, reserved: int, split: Split) -> list[int]:
        return [i for i in range(n) if i != reserved] if split == "train" else list(range(n))

    def unseen_combinations(self) -> list[tuple[str, str]]:
        """(sentence, answer word) pairs in phrasings the training split never uses for that entity.

        E.g. if "the home of anna is in ..." is reserved, the model only ever read
        "anna lives in paris" or "anna has a house in paris"; can it still fill
        "the home of anna is in [MASK]"?
        """
        pairs = []
        for name, person in self.people.items():
            pairs.append((LIVES_TEMPLATES[self.reserved_lives[name]].format(p=name, city=person.city), person.city))
        for fruit, (plural, colour) in FRUIT.items():
            pairs.append((COLOUR_TEMPLATES[self.reserved_colour[fruit]].format(f=fruit, fs=plural, c=colour), colour))
        return pairs

    # ------------------------------------------------------------------ stories

    def story(self, rng: random.Random, split: Split = "train") -> list[str]:
        """One document: an opening sentence, then 3 to 5 short blocks about the same person."""
        p = rng.choice(list(self.people.values()))
        q = rng.choice([other for other in self.people.values() if other.name != p.name])
        she, her = p.subject, p.possessive
        blocks = [
            self._city_block(p, rng),
            self._job_block(p, rng),
            self._pet_block(p, rng),
            self._weather_block(p, rng),
            self._fruit_block(p, rng, split),
            self._counting_block(p, rng),
            self._sum_block(rng),
            self._giving_block(p, q, rng),
            self._friend_block(p, q, rng, split),
            self._animal_block(p, rng),
        ]
        rng.shuffle(blocks)  # blocks keep their inner order, so neighbouring sentences stay on topic
        sentences = [self.lives_sentence(p, rng, split)]
        for block in blocks[: rng.randrange(3, 6)]:
            sentences.extend(block)
        return sentences

    # Each block: a few sentences that belong together (and agree with each other).

    @staticmethod
    def _city_block(p: Person, rng: random.Random) -> list[str]:
        return [rng.choice([f"{p.city} is a city in {p.country} .", f"{p.city} is in {p.country} ."])]

    @staticmethod
    def _job_block(p: Person, rng: random.Random) -> list[str]:
        place = JOB_PLACE[p.job]
        return [
            rng.choice([f"{p.subject} works as {article(p.job)} {p.job} .", f"{p.name} is {article(p.job)} {p.job} ."]),
            rng.choice([f"every day {p.subject} goes to the {place} .", f"{p.subject} likes {p.possessive} work at the {place} ."]),
        ]

    @staticmethod
    def _pet_block(p: Person, rng: random.Random) -> list[str]:
        plural, sound_one, sound_many = ANIMALS[p.pet]
        n = NUMBERS[rng.randrange(2, 6)]
        pet_name = rng.choice(["pip", "bo", "kiki", "rex", "lulu"])
        return rng.choice([
            [f"{p.name} has {article(p.pet)} {p.pet} .", f"the {p.pet} {sound_one} all day ."],
            [f"{p.subject} has {n} {plural} .", f"the {plural} {sound_many} at night ."],
            [f"{p.possessive} {p.pet} is called {pet_name} .", f"when {pet_name} is happy it {sound_one} ."],
        ])  # fmt: skip

    @staticmethod
    def _weather_block(p: Person, rng: random.Random) -> list[str]:
        day_i = rng.randrange(7)
        day, next_day = WEEKDAYS[day_i], WEEKDAYS[(day_i + 1) % 7]
        noun = rng.choice(list(WEATHER))
        verb, adverb = WEATHER[noun]
        return [
            rng.choice([f"on {day} the {noun} {verb} {adverb} .", f"today the {noun} {verb} {adverb} in {p.city} ."]),
            rng.choice([f"after {day} comes {next_day} .", f"the day after {day} is {next_day} ."]),
        ]

    def _fruit_block(self, p: Person, rng: random.Random, split: Split) -> list[str]:
        fruit = rng.choice(list(FRUIT))
        return [f"{p.name} eats {article(fruit)} {fruit} .", self.colour_sentence(fruit, rng, split)]

    @staticmethod
    def _counting_block(p: Person, rng: random.Random) -> list[str]:
        a, b = rng.randrange(1, 7), rng.randrange(1, 7)
        fruit = rng.choice(list(FRUIT))
        plural = FRUIT[fruit][0]
        return [
            f"{p.name} has {count_noun(a, fruit, plural)} and gets {NUMBERS[b]} more .",
            f"now {p.subject} has {count_noun(a + b, fruit, plural)} .",
        ]

    @staticmethod
    def _sum_block(rng: random.Random) -> list[str]:
        a, b = rng.randrange(1, 7), rng.randrange(1, 7)
        return [rng.choice([f"{NUMBERS[a]} plus {NUMBERS[b]} is {NUMBERS[a + b]} .", f"{NUMBERS[a + b]} minus {NUMBERS[b]} is {NUMBERS[a]} ."])]

    @staticmethod
    def _giving_block(p: Person, q: Person, rng: random.Random) -> list[str]:
        obj, colour = rng.choice(OBJECTS), rng.choice(OBJECT_COLOURS)
        return [f"{p.name} has {article(colour)} {colour} {obj} .", f"{p.subject} gives the {obj} to {q.name} .", f"now {q.name} has the {colour} {obj} ."]

    def _friend_block(self, p: Person, q: Person, rng: random.Random, split: Split) -> list[str]:
        thing = rng.choice(list(THINGS))
        return [
            rng.choice([f"{p.name} visits {q.name} in {q.city} .", self.lives_sentence(q, rng, split)]),
            rng.choice([f"{p.name} and {q.name} walk by the {thing} .", f"{q.name} says the {thing} is {THINGS[thing]} ."]),
        ]

    @staticmethod
    def _animal_block(p: Person, rng: random.Random) -> list[str]:
        seen = rng.choice(list(ANIMALS))
        plural, sound_one, sound_many = ANIMALS[seen]
        n = NUMBERS[rng.randrange(2, 6)]
        return rng.choice([
            [f"{p.name} sees {article(seen)} {seen} .", f"the {seen} {sound_one} ."],
            [f"{p.subject} sees {n} {plural} .", f"the {plural} {sound_many} ."],
        ])  # fmt: skip


# --------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """Documents (lists of sentences) of one split, plus the world they were drawn from."""

    documents: list[list[str]]
    world: World
    split: Split

    def sentences(self) -> Iterator[str]:
        for doc in self.documents:
            yield from doc

    def n_words(self) -> int:
        return sum(len(s.split()) for s in self.sentences())

    def __len__(self) -> int:
        return len(self.documents)


def make_corpus(n_docs: int = 4000, split: Split = "train", seed: int = 0, world: World | None = None) -> Corpus:
    """``n_docs`` stories of one split, deterministic by ``(world.world_seed, split, seed)``.

    The held-out split uses a different random stream from the training split, so
    its stories are new draws (and may use the reserved phrasings, see the module
    docstring).
    """
    if isinstance(n_docs, bool) or not isinstance(n_docs, int) or n_docs < 1:
        raise ValueError(f"n_docs must be a positive int, got {n_docs!r}")
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    world = world or World()
    rng = random.Random(f"{split}-{seed}")
    return Corpus([world.story(rng, split) for _ in range(n_docs)], world, split)


def vocabulary(corpora: Sequence[Corpus]) -> set[str]:
    """Every word (whitespace-separated) that occurs in the given corpora."""
    return {w for c in corpora for s in c.sentences() for w in s.split()}


# --------------------------------------------------------------------------- fine-tuning task

TOPICS = ("animal", "fruit", "job")
TOPIC_TEMPLATES = (
    "{p} likes the {x} .", "{p} talks about the {x} .", "{p} draws {a} {x} .",
    "{p} thinks of the {x} .", "a picture of {a} {x} is on the wall .", "{p} reads a story about {a} {x} .",
)  # fmt: skip


@dataclass
class TopicTask:
    """Labelled sentences: ``train`` (words of ``train_words``), ``test_seen`` (new sentences, same
    words) and ``test_unseen`` (words that no labelled sentence contains). Labels index ``TOPICS``."""

    train: list[tuple[str, int]]
    test_seen: list[tuple[str, int]]
    test_unseen: list[tuple[str, int]]
    train_words: dict[str, list[str]]
    unseen_words: dict[str, list[str]]


def topic_task(n_train: int = 300, n_test: int = 600, seed: int = 0) -> TopicTask:
    """The chapter's fine-tuning task: which topic (animal / fruit / job) is a sentence about?"""
    rng = random.Random(f"topic-{seed}")
    words = {"animal": list(ANIMALS), "fruit": list(FRUIT), "job": list(JOB_PLACE)}
    train_words, unseen_words = {}, {}
    for topic in TOPICS:
        shuffled = sorted(words[topic])
        rng.shuffle(shuffled)
        half = len(shuffled) // 2
        train_words[topic], unseen_words[topic] = shuffled[:half], shuffled[half:]
    names = FEMALE + MALE

    def sentences(pool: dict[str, list[str]], n: int, stream: str) -> list[tuple[str, int]]:
        r = random.Random(f"topic-{seed}-{stream}")
        out = []
        for _ in range(n):
            label = r.randrange(len(TOPICS))
            x = r.choice(pool[TOPICS[label]])
            template, name = r.choice(TOPIC_TEMPLATES), r.choice(names)
            out.append((template.format(p=name, x=x, a=article(x)), label))
        return out

    return TopicTask(
        sentences(train_words, n_train, "train"),
        sentences(train_words, n_test, "seen"),
        sentences(unseen_words, n_test, "unseen"),
        train_words,
        unseen_words,
    )
