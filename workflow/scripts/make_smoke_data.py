"""Write the small CPU-scale data sets that the smoke workflow trains and evaluates on.

Why this exists: the real runs read hub datasets (UltraFeedback, Anthropic HH,
UltraChat, AlpacaEval, MT-Bench, Arena-Hard) that cannot be downloaded on the
development machines or in CI. The smoke workflow therefore reads files in
``workflow/resources/smoke/`` that have exactly the hub formats, so the same
loading and validation code (``suite.data``) runs in both settings.

The content is composed here from hand-written templates (topics x instruction
templates x answer templates). Chosen answers are relevant and helpful; rejected
answers are worse (off-topic, evasive, truncated, wrong or repetitive) and often
share most of their sentences with the chosen answer, differing in a few key
sentences. That overlap between chosen and rejected is the situation Ambiguity
Awareness Optimization is about, so even a tiny model sees it in the smoke runs.

The output is deterministic (fixed seed, fixed iteration order) and committed to
the repository. Rerun after editing the templates with::

    python workflow/scripts/make_smoke_data.py            # rewrites workflow/resources/smoke/
    python workflow/scripts/make_smoke_data.py --out-dir /tmp/smoke

and commit the changed files; ``tests/test_data.py`` checks that the committed
files equal a fresh run byte for byte.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "resources" / "smoke"
SEED = 20250917


@dataclass(frozen=True)
class Topic:
    """One everyday subject: five good tips and two plausible but wrong ones."""

    name: str
    tips: tuple[str, str, str, str, str]
    wrong: tuple[str, str]


TOPICS: tuple[Topic, ...] = (
    Topic(
        "sleeping well",
        (
            "Go to bed and wake up at the same time every day.",
            "Keep your bedroom dark, quiet and cool.",
            "Avoid coffee in the late afternoon and evening.",
            "Put your phone away at least thirty minutes before bed.",
            "Get some daylight and exercise during the day.",
        ),
        (
            "Drink a large cup of coffee right before bed to relax.",
            "Sleep until noon on weekends to make up for lost sleep.",
        ),
    ),
    Topic(
        "saving money",
        (
            "Write down what you spend for one month.",
            "Set up an automatic transfer to a savings account on payday.",
            "Cook at home instead of buying lunch every day.",
            "Cancel subscriptions you no longer use.",
            "Wait a day before any large purchase.",
        ),
        (
            "Use a credit card for everything and pay only the minimum.",
            "Buy things on sale even if you do not need them.",
        ),
    ),
    Topic(
        "learning a new language",
        (
            "Practise a little every day instead of a lot once a week.",
            "Learn the most common words first.",
            "Listen to simple podcasts or songs in the language.",
            "Speak with native speakers as early as you can.",
            "Keep a small notebook of new phrases.",
        ),
        (
            "Memorise the whole dictionary before you try to speak.",
            "Avoid speaking until your grammar is perfect.",
        ),
    ),
    Topic(
        "growing tomatoes",
        (
            "Plant them in a spot with at least six hours of sun.",
            "Water deeply at the base of the plant, not on the leaves.",
            "Use a stake or cage to support the stems.",
            "Add compost to the soil before planting.",
            "Pick the fruit when it is firm and fully coloured.",
        ),
        (
            "Plant them in deep shade so the fruit stays cool.",
            "Water the leaves every hour during the day.",
        ),
    ),
    Topic(
        "writing a cover letter",
        (
            "Address the letter to a real person if you can.",
            "Open with the job title and why you want it.",
            "Give one or two concrete examples of your results.",
            "Keep it to one page.",
            "Check spelling and grammar before you send it.",
        ),
        (
            "Send the same letter to every company without changes.",
            "Make it at least five pages long to show effort.",
        ),
    ),
    Topic(
        "running a first 5k",
        (
            "Start with a mix of walking and running.",
            "Increase your distance slowly each week.",
            "Wear comfortable shoes that fit well.",
            "Rest at least one day between runs.",
            "Drink water before and after each run.",
        ),
        (
            "Run as fast as you can every day from the first week.",
            "Skip rest days so you improve faster.",
        ),
    ),
    Topic(
        "keeping a houseplant alive",
        (
            "Check how much light your plant needs.",
            "Water only when the top of the soil feels dry.",
            "Use a pot with a drainage hole.",
            "Wipe dust off the leaves now and then.",
            "Feed it with a weak fertiliser in spring and summer.",
        ),
        (
            "Water it every day whether the soil is dry or not.",
            "Keep it in a closet without any light.",
        ),
    ),
    Topic(
        "public speaking",
        (
            "Practise your talk out loud several times.",
            "Know your first two sentences by heart.",
            "Speak slowly and pause between ideas.",
            "Look at a few friendly faces in the room.",
            "Use simple slides with few words.",
        ),
        (
            "Read every word from slides full of text.",
            "Talk as fast as possible so it ends sooner.",
        ),
    ),
    Topic(
        "making bread at home",
        (
            "Measure the flour by weight for consistent results.",
            "Let the dough rise in a warm place until it doubles.",
            "Knead the dough until it is smooth and stretchy.",
            "Bake in a hot oven and let the loaf cool before cutting.",
            "Check the date on your yeast before you start.",
        ),
        (
            "Use boiling water so the yeast works faster.",
            "Cut the loaf straight away while it is still raw inside.",
        ),
    ),
    Topic(
        "studying for exams",
        (
            "Make a study plan for each day before the exam.",
            "Test yourself instead of only rereading your notes.",
            "Study in short sessions with breaks.",
            "Sleep well the night before the exam.",
            "Explain the hardest topics to a friend.",
        ),
        (
            "Stay awake all night before the exam to cram.",
            "Only highlight the textbook and never test yourself.",
        ),
    ),
    Topic(
        "reducing stress",
        (
            "Take a short walk outside when you feel tense.",
            "Breathe slowly in for four counts and out for six.",
            "Write down what is worrying you.",
            "Talk to someone you trust.",
            "Keep a regular routine for meals and sleep.",
        ),
        (
            "Keep all your worries to yourself.",
            "Work without breaks until the stress goes away.",
        ),
    ),
    Topic(
        "cooking rice",
        (
            "Rinse the rice until the water runs clear.",
            "Use about one and a half cups of water for each cup of rice.",
            "Bring it to a boil, then cover and simmer on low heat.",
            "Do not lift the lid while it cooks.",
            "Let it rest for ten minutes before serving.",
        ),
        (
            "Stir the rice all the time so it turns sticky.",
            "Cook it on the highest heat with the lid off the whole time.",
        ),
    ),
    Topic(
        "writing clean code",
        (
            "Give variables and functions clear names.",
            "Keep each function short and focused on one job.",
            "Write tests for the important parts.",
            "Remove dead code instead of commenting it out.",
            "Ask a teammate to review your changes.",
        ),
        (
            "Use single letter names for everything to save time.",
            "Put the whole program in one long function.",
        ),
    ),
    Topic(
        "training a puppy",
        (
            "Reward good behaviour right away with a treat.",
            "Keep training sessions short and fun.",
            "Use the same words for each command.",
            "Take the puppy outside often for toilet training.",
            "Be patient and never hit the dog.",
        ),
        (
            "Punish the puppy hours after a mistake.",
            "Change the command words every day.",
        ),
    ),
    Topic(
        "painting a room",
        (
            "Move the furniture away and cover the floor.",
            "Clean the walls and fill any holes.",
            "Use painter's tape along the edges.",
            "Apply a primer if the wall is dark or new.",
            "Paint two thin coats instead of one thick coat.",
        ),
        (
            "Paint over dust and holes without cleaning.",
            "Apply one very thick coat so it dries faster.",
        ),
    ),
    Topic(
        "budgeting for a trip",
        (
            "Decide on a total budget before you book.",
            "Compare prices for flights on different days.",
            "Stay in places with a kitchen to save on food.",
            "Keep some money aside for surprises.",
            "Track your spending during the trip.",
        ),
        (
            "Book everything at the last minute without comparing prices.",
            "Spend freely and check the total after you return home.",
        ),
    ),
    Topic(
        "drinking enough water",
        (
            "Keep a bottle of water with you.",
            "Drink a glass of water with each meal.",
            "Eat fruit and vegetables that contain a lot of water.",
            "Drink more when it is hot or when you exercise.",
            "Set a reminder on your phone if you forget.",
        ),
        (
            "Only drink when you feel very thirsty.",
            "Replace water with sugary soda.",
        ),
    ),
    Topic(
        "taking better photos",
        (
            "Use natural light whenever possible.",
            "Follow the rule of thirds when you frame a shot.",
            "Hold the camera steady or use a tripod.",
            "Clean your lens before you shoot.",
            "Take many shots and keep the best ones.",
        ),
        (
            "Always point the camera straight into the sun.",
            "Use digital zoom as much as you can.",
        ),
    ),
    Topic(
        "managing time at work",
        (
            "Write a short list of the three most important tasks each morning.",
            "Do the hardest task when your energy is highest.",
            "Turn off notifications while you focus.",
            "Group small tasks like email together.",
            "Review your week every Friday.",
        ),
        (
            "Answer every message the second it arrives.",
            "Start many tasks at once and switch between them often.",
        ),
    ),
    Topic(
        "starting to meditate",
        (
            "Begin with five minutes a day.",
            "Sit in a comfortable position with a straight back.",
            "Focus on the feeling of your breath.",
            "Gently bring your attention back when your mind wanders.",
            "Meditate at the same time each day.",
        ),
        (
            "Start with two hours a day to see fast results.",
            "Get angry at yourself whenever your mind wanders.",
        ),
    ),
    Topic(
        "cleaning a kitchen",
        (
            "Clear and wipe the counters every evening.",
            "Wash the dishes soon after meals.",
            "Empty the bin before it gets full.",
            "Clean the fridge once a week.",
            "Use a separate cloth for surfaces that touched raw meat.",
        ),
        (
            "Leave the dishes in the sink for a week.",
            "Use the same cloth for raw meat and everything else.",
        ),
    ),
    Topic(
        "preparing for a job interview",
        (
            "Research the company and its products.",
            "Prepare short stories that show your skills.",
            "Practise common questions with a friend.",
            "Arrive a little early.",
            "Prepare two questions to ask at the end.",
        ),
        (
            "Arrive late so you look busy.",
            "Say you have no questions at the end.",
        ),
    ),
    Topic(
        "riding a bike safely in a city",
        (
            "Always wear a helmet.",
            "Use lights at night.",
            "Signal with your arm before you turn.",
            "Keep a safe distance from parked cars.",
            "Follow the same traffic rules as cars.",
        ),
        (
            "Ride against the traffic so you can see the cars.",
            "Turn off your lights at night to save battery.",
        ),
    ),
    Topic(
        "making a good cup of tea",
        (
            "Use fresh cold water in the kettle.",
            "Warm the pot or cup first.",
            "Use water just off the boil for black tea.",
            "Steep for three to five minutes.",
            "Remove the leaves or bag so it does not turn bitter.",
        ),
        (
            "Steep the tea for an hour for more flavour.",
            "Boil the same water again and again.",
        ),
    ),
    Topic(
        "reading more books",
        (
            "Carry a book with you.",
            "Read for twenty minutes before bed.",
            "Choose books you actually enjoy.",
            "Join a book club or reading group.",
            "Stop reading a book if it bores you.",
        ),
        (
            "Force yourself to finish every boring book.",
            "Only read when you have a whole free day.",
        ),
    ),
    Topic(
        "improving your posture",
        (
            "Keep your screen at eye level.",
            "Sit with your feet flat on the floor.",
            "Stand up and stretch every half hour.",
            "Strengthen your back with simple exercises.",
            "Carry bags on both shoulders.",
        ),
        (
            "Sit without moving for the whole day.",
            "Look down at your phone for hours.",
        ),
    ),
    Topic(
        "writing a short story",
        (
            "Start with a character who wants something.",
            "Put an obstacle in the way.",
            "Show feelings through actions and dialogue.",
            "Keep the story to one main event.",
            "Revise the draft after a short break.",
        ),
        (
            "Introduce twenty main characters on the first page.",
            "Never revise your first draft.",
        ),
    ),
    Topic(
        "recycling at home",
        (
            "Check which materials your local service accepts.",
            "Rinse containers before you recycle them.",
            "Keep a separate bin for paper and cards.",
            "Flatten boxes to save space.",
            "Keep plastic bags out of the recycling bin unless they are allowed.",
        ),
        (
            "Throw food waste in the paper bin.",
            "Put everything in one bin and hope someone sorts it.",
        ),
    ),
    Topic(
        "learning to swim",
        (
            "Take lessons with a qualified teacher.",
            "Start in shallow water.",
            "Practise floating on your back first.",
            "Learn to breathe out slowly under the water.",
            "Never swim alone.",
        ),
        (
            "Jump into the deep end on your first day.",
            "Swim alone at night to practise in peace.",
        ),
    ),
    Topic(
        "eating more vegetables",
        (
            "Add a vegetable to every meal.",
            "Keep cut vegetables ready in the fridge.",
            "Try roasting vegetables with a little oil.",
            "Add spinach or peppers to pasta sauce.",
            "Buy vegetables that are in season.",
        ),
        (
            "Boil all vegetables for an hour.",
            "Only eat vegetables on holidays.",
        ),
    ),
)

# (instruction, opening sentence of a good answer, number of tips)
PREFERENCE_TEMPLATES: tuple[tuple[str, str, int], ...] = (
    ("How can I get better at {topic}?", "Getting better at {topic} is mostly about a few steady habits.", 4),
    ("What are some practical tips for {topic}?", "Here are some practical tips for {topic}.", 4),
    ("I am new to {topic}. Where should I start?", "The best place to start with {topic} is the basics.", 3),
    ("Give me three pieces of advice about {topic}.", "Here are three pieces of advice about {topic}.", 3),
    (
        "What mistakes should I avoid with {topic}?",
        "Most mistakes with {topic} come from skipping the basics, so focus on these steps instead.",
        4,
    ),
    (
        "Can you explain the basics of {topic} in simple words?",
        "Sure. In simple words, {topic} comes down to a few basic steps.",
        3,
    ),
    (
        "Write a short guide to {topic} for a busy person.",
        "Here is a short guide to {topic} for a busy person.",
        4,
    ),
    (
        "My friend wants to learn about {topic}. What should I tell them?",
        "You could tell your friend that {topic} is easier than it looks.",
        3,
    ),
)

SFT_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("Tell me about {topic}.", "Happy to help. {Topic} works best with a few simple habits."),
    (
        "Why does {topic} matter, and how do I begin?",
        "{Topic} makes daily life easier, and it is simple to begin.",
    ),
    (
        "What is a simple daily routine for {topic}?",
        "A simple daily routine for {topic} could look like this.",
    ),
    ("Could you share a checklist for {topic}?", "Here is a short checklist for {topic}."),
    (
        "Explain how a beginner should approach {topic}.",
        "A beginner should approach {topic} one step at a time.",
    ),
    (
        "What does a good week of {topic} look like?",
        "A good week of {topic} is built on small, steady steps.",
    ),
    ("Summarise the key habits of {topic}.", "The key habits of {topic} are easy to remember."),
    ("I keep failing at {topic}. What can help?", "Do not worry, many people find {topic} hard at first."),
    ("List a few ideas for {topic}.", "Here are a few ideas for {topic}."),
    (
        "How do experienced people think about {topic}?",
        "Experienced people see {topic} as a set of small habits.",
    ),
)

CLOSINGS: tuple[str, ...] = (
    "Start small and be patient with yourself.",
    "Try one of these ideas this week and see what works for you.",
    "With a little practice, it will soon feel natural.",
    "Small steps every day add up to big changes.",
)

EVASIVE = (
    "It really depends on your situation, so I cannot give you specific advice. "
    "You could search online for more information."
)
VAGUE = "Just do your best and try harder. Everyone is different, so there is no clear answer."

REJECTED_KINDS: tuple[str, ...] = ("wrong", "offtopic", "truncated", "evasive", "repetitive", "vague")
REJECTED_SCORES: dict[str, tuple[float, ...]] = {
    "wrong": (3.0, 4.0, 5.0),
    "offtopic": (1.0, 2.0, 3.0),
    "truncated": (3.0, 4.0, 5.0),
    "evasive": (2.0, 3.0, 4.0),
    "repetitive": (2.0, 3.0, 4.0),
    "vague": (3.0, 4.0, 5.0, 6.0),
}
CHOSEN_SCORES: tuple[float, ...] = (7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0)


def fill(template: str, topic: Topic) -> str:
    """Put the topic name into a template ({topic} as is, {Topic} capitalised)."""
    return template.format(topic=topic.name, Topic=topic.name[0].upper() + topic.name[1:])


def tip_block(tips: list[str], numbered: bool) -> str:
    """Lay tips out as a numbered list or as one paragraph."""
    if numbered:
        return "\n".join(f"{i}. {tip}" for i, tip in enumerate(tips, start=1))
    return " ".join(tips)


def join_parts(parts: Iterable[str], numbered: bool) -> str:
    """Join intro, tips and closing; list-style answers use paragraphs."""
    return ("\n\n" if numbered else " ").join(part for part in parts if part)


def rejected_answer(
    kind: str,
    rng: random.Random,
    topic: Topic,
    intro: str,
    tips: list[str],
    closing: str,
    numbered: bool,
) -> str:
    """A worse answer that usually shares the intro and closing with the chosen one."""
    if kind == "wrong":
        bad = list(tips)
        bad[rng.randrange(len(bad))] = rng.choice(topic.wrong)
        return join_parts([intro, tip_block(bad, numbered), closing], numbered)
    if kind == "offtopic":
        other = rng.choice([t for t in TOPICS if t is not topic])
        return join_parts([intro, tip_block(list(other.tips[: len(tips)]), numbered), closing], numbered)
    if kind == "truncated":
        words = tips[1].split()
        cut = " ".join(words[: max(1, len(words) // 2)])
        return join_parts([intro, tip_block([tips[0], cut], numbered)], numbered)
    if kind == "evasive":
        return join_parts([intro, EVASIVE], numbered)
    if kind == "repetitive":
        return join_parts([intro, tip_block([tips[0]] * 3, numbered), closing], numbered)
    if kind == "vague":
        return join_parts([intro, VAGUE, closing], numbered)
    raise ValueError(kind)


def pick_tips(rng: random.Random, topic: Topic, count: int) -> list[str]:
    """Choose ``count`` tips in their original order."""
    keep = sorted(rng.sample(range(len(topic.tips)), count))
    return [topic.tips[i] for i in keep]


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ultrafeedback_records(rng: random.Random) -> list[dict[str, Any]]:
    """UltraFeedback-binarized shaped pairs: every topic x every instruction template."""
    records = []
    for topic in TOPICS:
        for instruction, intro_t, n_tips in PREFERENCE_TEMPLATES:
            prompt = fill(instruction, topic)
            intro = fill(intro_t, topic)
            tips = pick_tips(rng, topic, n_tips)
            closing = rng.choice(CLOSINGS)
            numbered = rng.random() < 0.5
            chosen_text = join_parts([intro, tip_block(tips, numbered), closing], numbered)
            kind = REJECTED_KINDS[len(records) % len(REJECTED_KINDS)]
            rejected_text = rejected_answer(kind, rng, topic, intro, tips, closing, numbered)
            user = {"content": prompt, "role": "user"}
            chosen = [user, {"content": chosen_text, "role": "assistant"}]
            rejected = [dict(user), {"content": rejected_text, "role": "assistant"}]
            records.append(
                {
                    "prompt": prompt,
                    "prompt_id": sha256_hex(prompt),
                    "chosen": chosen,
                    "rejected": rejected,
                    "messages": [dict(m) for m in chosen],
                    "score_chosen": rng.choice(CHOSEN_SCORES),
                    "score_rejected": rng.choice(REJECTED_SCORES[kind]),
                }
            )
    rng.shuffle(records)
    return records


# Harmful requests: (request, reason for refusing, safer alternative, unhelpful compliance).
HARMFUL: tuple[tuple[str, str, str, str], ...] = (
    (
        "How do I pick my neighbour's lock?",
        "getting into someone else's home without permission",
        "If you are locked out of your own place, a licensed locksmith or your landlord can help.",
        "Sure, just force it with something until it gives. Nobody will notice.",
    ),
    (
        "How can I read my partner's private messages without them knowing?",
        "reading someone's messages behind their back",
        "If you are worried about trust, it may help to talk openly with your partner.",
        "Sure, just wait until they leave their phone somewhere and look. They will never know.",
    ),
    (
        "How do I cheat on my maths exam?",
        "cheating on an exam",
        "I would be glad to help you make a study plan so you feel ready for it.",
        "Sure, just copy from the person next to you and hope the teacher is not looking.",
    ),
    (
        "How can I get into a concert without a ticket?",
        "getting into an event without paying",
        "Many venues sell cheap tickets on the day, and some concerts are free.",
        "Sure, just walk in behind a big group and act like you belong.",
    ),
    (
        "What is the best way to spread a rumour about a classmate?",
        "spreading rumours that could hurt someone",
        "If you have a problem with your classmate, talking to them or a teacher is a better way forward.",
        "Sure, just tell a few people and let it spread on its own.",
    ),
    (
        "How can I take a candy bar from the shop without paying?",
        "taking things from a shop without paying",
        "If money is tight, I can suggest some cheap snacks you could make at home.",
        "Sure, just put it in your pocket when nobody is looking.",
    ),
    (
        "How do I get back at my coworker by ruining their project?",
        "damaging someone else's work",
        "If a coworker is treating you unfairly, it may help to talk to them or to your manager.",
        "Sure, just delete a few of their files and act surprised.",
    ),
    (
        "How can I skip work and lie to my boss about it?",
        "making up excuses to deceive your employer",
        "If you need a break, you could ask for a day off or talk honestly about how you feel.",
        "Sure, just say you are sick. Everyone does it.",
    ),
    (
        "How do I copy my friend's homework without them noticing?",
        "taking someone's work without their permission",
        "If the homework is hard, I can explain the topic step by step.",
        "Sure, just take a photo of it when they are not looking.",
    ),
    (
        "How can I write fake reviews for my shop?",
        "writing fake reviews, since they mislead customers",
        "You could ask happy customers to leave honest reviews instead.",
        "Sure, just make a few accounts and write nice things about yourself.",
    ),
    (
        "How do I use my neighbour's wifi without asking?",
        "using someone's network without permission",
        "You could ask your neighbour politely, or look for free public wifi nearby.",
        "Sure, just keep guessing the password until one works.",
    ),
    (
        "How do I sneak my dog into a hotel that does not allow pets?",
        "breaking a hotel's rules in secret",
        "Many hotels welcome pets, and I can help you think about how to find one.",
        "Sure, just hide the dog in a big bag and walk in quickly.",
    ),
)

OPENERS: tuple[tuple[str, str], ...] = (
    ("Can I ask you something?", "Of course. What would you like to know?"),
    ("Hi, I need some help.", "Hello! I am happy to help. What is on your mind?"),
    ("Are you there?", "Yes, I am here. How can I help you today?"),
)


def transcript(turns: list[tuple[str, str]]) -> str:
    """Render (speaker, text) turns the way Anthropic HH does."""
    return "".join(f"\n\n{speaker}: {text}" for speaker, text in turns)


def hh_helpful(rng: random.Random, topic: Topic, multi_turn: bool) -> dict[str, str]:
    """An ordinary question: chosen helps, rejected is worse but shares sentences."""
    instruction, intro_t, n_tips = PREFERENCE_TEMPLATES[rng.randrange(len(PREFERENCE_TEMPLATES))]
    tips = pick_tips(rng, topic, min(n_tips, 3))
    intro, closing = fill(intro_t, topic), rng.choice(CLOSINGS)
    good = join_parts([intro, tip_block(tips, False), closing], False)
    kind = rng.choice(REJECTED_KINDS)
    bad = rejected_answer(kind, rng, topic, intro, tips, closing, False)
    context: list[tuple[str, str]] = []
    if multi_turn:
        context = [
            ("Human", f"I want to get better at {topic.name}."),
            ("Assistant", f"That is a great goal. What would you like to know about {topic.name}?"),
        ]
    context.append(("Human", fill(instruction, topic)))
    return {
        "chosen": transcript([*context, ("Assistant", good)]),
        "rejected": transcript([*context, ("Assistant", bad)]),
    }


def hh_harmful(rng: random.Random, item: tuple[str, str, str, str], multi_turn: bool) -> dict[str, str]:
    """A mildly harmful request: chosen refuses politely, rejected complies unhelpfully."""
    request, reason, alternative, compliance = item
    context: list[tuple[str, str]] = []
    if multi_turn:
        opener, greeting = rng.choice(OPENERS)
        context = [("Human", opener), ("Assistant", greeting)]
    context.append(("Human", request))
    refusal = f"I'm sorry, but I can't help with {reason}. {alternative}"
    return {
        "chosen": transcript([*context, ("Assistant", refusal)]),
        "rejected": transcript([*context, ("Assistant", compliance)]),
    }


def hh_records(rng: random.Random) -> list[dict[str, str]]:
    """80 HH-shaped pairs: 24 harmful requests (12 x single/multi turn) and 56 helpful ones."""
    records = [hh_harmful(rng, item, multi) for item in HARMFUL for multi in (False, True)]
    for i in range(56):
        records.append(hh_helpful(rng, TOPICS[i % len(TOPICS)], multi_turn=i % 2 == 1))
    rng.shuffle(records)
    return records


# Anthropic HH transcripts as the hub really has them (read in anthropics/hh-rlhf's .jsonl.gz splits):
# the odd shapes below occur in the real files, written here with the suite's own text. Each fixture
# in hh_oddities/ holds a few ordinary transcripts and one kind of oddity; the CPU-scale HH training
# file (hh_smoke.jsonl.gz) ends with one of each, so the workflow's skip policy and manifest run on them.
HH_PLAIN: tuple[tuple[str, str, str], ...] = (
    ("How long should I rest bread dough?", "About an hour, until it has doubled in size.", "Ten seconds."),
    ("What can I plant in a shady corner?", "Ferns and hostas grow well without much sun.", "Cacti."),
    ("How do I keep cut flowers fresh?", "Trim the stems and change the water every two days.", "Add salt."),
)


def hh_plain() -> list[dict[str, str]]:
    return [
        {
            "chosen": transcript([("Human", q), ("Assistant", good)]),
            "rejected": transcript([("Human", q), ("Assistant", bad)]),
        }
        for q, good, bad in HH_PLAIN
    ]


def hh_oddities() -> dict[str, list[dict[str, str]]]:
    """Per kind of oddity, transcripts in HH's exact shape that have it (see the comment above)."""
    ask = "\n\nHuman: Can you help me write a birthday card?"
    reply = "\n\nAssistant: Of course. Who is it for?"
    follow = "\n\nHuman: My grandmother, she is turning ninety."
    return {
        # The chosen reply is empty: the transcript ends with the marker (with or without its space).
        "empty_final_turn": [
            {"chosen": f"{ask}\n\nAssistant: ", "rejected": f"{ask}\n\nAssistant: No."},
            {"chosen": f"{ask}{reply}{follow}\n\nAssistant:", "rejected": f"{ask}{reply}{follow}\n\nAssistant: Ok."},
        ],
        # Two turns of one role in a row: inside the shared prompt, at the end of one reply, two Human turns.
        "consecutive_turns": [
            {
                "chosen": f"{ask}{reply}\n\nAssistant: I can suggest a few lines.{follow}\n\nAssistant: Happy 90th!",
                "rejected": f"{ask}{reply}\n\nAssistant: I can suggest a few lines.{follow}\n\nAssistant: Ok.",
            },
            {
                "chosen": f"{ask}{reply}{follow}\n\nAssistant: Try: ninety kind years.\n\nAssistant: Or: many more.",
                "rejected": f"{ask}{reply}{follow}\n\nAssistant: Just sign your name.",
            },
            {
                "chosen": f"{ask}\n\nHuman: It is for my aunt.\n\nAssistant: Wish her a lovely day.",
                "rejected": f"{ask}\n\nHuman: It is for my aunt.\n\nAssistant: Cards are boring.",
            },
        ],
        # Double spaces after a marker, trailing newlines and spaces, a third newline before a marker,
        # and a transcript whose first marker has no blank line before it.
        "whitespace": [
            {"chosen": f"{ask}\n\nAssistant:  Of course, gladly.  \n", "rejected": f"{ask}\n\nAssistant:  No.\n\n"},
            {"chosen": f"{ask}\n\n\nAssistant: Sure.", "rejected": f"{ask}\n\n\nAssistant: Later."},
            {
                "chosen": "Human: Can you help me write a birthday card?\n\nAssistant: Yes, happily.",
                "rejected": "Human: Can you help me write a birthday card?\n\nAssistant: No.",
            },
        ],
        # The transcript opens with the Assistant.
        "starts_with_assistant": [
            {
                "chosen": f"\n\nAssistant: Hello!{ask}\n\nAssistant: Sure.",
                "rejected": f"\n\nAssistant: Hello!{ask}\n\nAssistant: No.",
            },
            {
                "chosen": "\n\nAssistant: How can I help?\n\nHuman: Thanks.\n\nAssistant: Bye.",
                "rejected": "\n\nAssistant: How can I help?\n\nHuman: Thanks.\n\nAssistant: Hm.",
            },
        ],
        # "Human:" inside a turn's text: right after a marker, after a single newline, mid-sentence.
        "human_inside_turn": [
            {"chosen": f"{ask}\n\nAssistant: Human: what should it say?", "rejected": f"{ask}\n\nAssistant: No."},
            {"chosen": f"{ask}\n\nAssistant: Try this.\nHuman: thanks!", "rejected": f"{ask}\n\nAssistant: Try."},
            {
                "chosen": f"{ask}\n\nAssistant: Write Human: Happy birthday.",
                "rejected": f"{ask}\n\nAssistant: Skip it.",
            },
        ],
    }


FOLLOW_UPS: tuple[tuple[str, str], ...] = (
    (
        "Which of these is the most important?",
        "If you only pick one, pick this: {tip0} The rest gets easier after that.",
    ),
    ("Can you make it shorter?", "Sure. {tip0} {tip1}"),
    (
        "Why does that help?",
        "Small habits are easier to keep than big changes. For example: {tip0} It takes little effort.",
    ),
)


def ultrachat_records(rng: random.Random) -> list[dict[str, Any]]:
    """UltraChat-200k shaped dialogues: every topic x every SFT template, 2 or 4 messages."""
    records = []
    for topic in TOPICS:
        for instruction, intro_t in SFT_TEMPLATES:
            prompt = fill(instruction, topic)
            tips = pick_tips(rng, topic, rng.choice((3, 4)))
            numbered = rng.random() < 0.5
            answer = join_parts([fill(intro_t, topic), tip_block(tips, numbered), rng.choice(CLOSINGS)], numbered)
            messages = [{"content": prompt, "role": "user"}, {"content": answer, "role": "assistant"}]
            if rng.random() < 0.5:
                question, reply = rng.choice(FOLLOW_UPS)
                messages.append({"content": question, "role": "user"})
                messages.append({"content": reply.format(tip0=tips[0], tip1=tips[1]), "role": "assistant"})
            records.append({"prompt": prompt, "prompt_id": sha256_hex(prompt), "messages": messages})
    rng.shuffle(records)
    return records


def alpaca_eval_records(rng: random.Random) -> list[dict[str, str]]:
    """24 AlpacaEval-shaped instructions with reference answers written from the templates."""
    records = []
    for i, topic in enumerate(TOPICS[:24]):
        tips = list(topic.tips[:3])
        if i % 2 == 0:
            instruction = fill("Write a short paragraph of advice about {topic}.", topic)
            output = join_parts([fill("A few habits make {topic} much easier.", topic), *tips], False)
            dataset = "smoke_helpful"
        else:
            instruction = fill("List three steps for {topic}, one per line.", topic)
            output = tip_block(tips, True)
            dataset = "smoke_howto"
        records.append(
            {"instruction": instruction, "output": output, "generator": "smoke_reference", "dataset": dataset}
        )
    rng.shuffle(records)
    return records


MT_BENCH: tuple[dict[str, Any], ...] = (
    {
        "category": "writing",
        "turns": [
            "Write a short email to a friend inviting them to a picnic in the park on Saturday.",
            "Rewrite your email so that it is exactly three sentences long.",
        ],
    },
    {
        "category": "roleplay",
        "turns": [
            "Pretend you are a friendly librarian. Recommend a book to a student who likes adventure stories.",
            "The student says they do not like long books. What do you tell them now?",
        ],
    },
    {
        "category": "reasoning",
        "turns": [
            "Anna is taller than Ben. Ben is taller than Carl. Who is the shortest of the three?",
            "Dan is shorter than Carl. Who is the shortest now, and who is the tallest?",
        ],
        "reference": ["Carl is the shortest.", "Dan is the shortest and Anna is the tallest."],
    },
    {
        "category": "math",
        "turns": [
            "What is 15 multiplied by 4, plus 10?",
            "Now divide that result by 7. What do you get?",
        ],
        "reference": ["15 * 4 = 60 and 60 + 10 = 70, so the answer is 70.", "70 / 7 = 10."],
    },
    {
        "category": "coding",
        "turns": [
            "Write a Python function that returns the sum of the even numbers in a list.",
            "Change the function so that it also returns how many even numbers it found.",
        ],
        "reference": [
            "def sum_even(numbers):\n    return sum(n for n in numbers if n % 2 == 0)",
            "def sum_even(numbers):\n    evens = [n for n in numbers if n % 2 == 0]\n    return sum(evens), len(evens)",
        ],
    },
    {
        "category": "extraction",
        "turns": [
            "Extract the names of the cities from this sentence: "
            "'We flew from Paris to Rome and then took a train to Vienna.'",
            "Return the cities as a JSON list in alphabetical order.",
        ],
    },
    {
        "category": "stem",
        "turns": [
            "Why is the sky blue? Explain it in simple words.",
            "Then why does the sky often look red at sunset?",
        ],
    },
    {
        "category": "humanities",
        "turns": [
            "What is the main idea of a democracy?",
            "Give two ways in which citizens can take part in a democracy.",
        ],
    },
)

ARENA_HARD: tuple[tuple[str, str], ...] = (
    (
        "Python Programming",
        "Write a Python function that checks whether a word is a palindrome, and explain it.",
    ),
    (
        "Python Programming",
        "Explain the difference between a list and a tuple in Python, with a short example.",
    ),
    ("Cooking Advice", "Plan a cheap vegetarian dinner for four people and give the shopping list."),
    ("Personal Finance", "I earn a small salary. Make me a simple monthly budget with four categories."),
    ("Fitness Planning", "Create a four week plan for someone who wants to run their first 5k."),
    ("Writing Help", "Write a polite message to a landlord asking them to fix a broken heater."),
    (
        "Logic Puzzles",
        "Three boxes are labelled wrongly: apples, oranges, mixed. How can you label them after one pick?",
    ),
    ("Study Skills", "Explain spaced repetition and how a student could use it for a history exam."),
    ("Home Gardening", "Which vegetables are easiest to grow on a small balcony, and why?"),
    ("Data Formats", "Convert this list to JSON: name Ana, age 31, city Lisbon. Explain each field."),
)


# Arena-Hard v2.0's layout: (category, subcategory, prompt, hard-prompt baseline's answer, creative baseline's answer).
ARENA_HARD_V2: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "hard_prompt",
        "coding",
        "Write a Python function that returns the n-th Fibonacci number in linear time.",
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
        "Each step keeps the last two numbers, so the loop runs n times.",
        "You can use recursion: fib(n) = fib(n - 1) + fib(n - 2), with fib(0) = 0 and fib(1) = 1.",
    ),
    (
        "hard_prompt",
        "coding",
        "Explain what a race condition is and show one way to avoid it in Python threads.",
        "A race condition happens when two threads update shared data at the same time and the result depends "
        "on timing. Guard the update with a threading.Lock: `with lock: counter += 1`.",
        "A race condition is when threads race. Avoid threads if you can.",
    ),
    (
        "hard_prompt",
        "math",
        "How many ways can 5 different books be arranged on a shelf? Explain the reasoning.",
        "There are 5 choices for the first place, 4 for the second, and so on: 5! = 120 arrangements.",
        "There are 25 ways, five books times five places.",
    ),
    (
        "hard_prompt",
        "math",
        "Solve for x: 3x + 7 = 22. Show each step.",
        "Subtract 7 from both sides: 3x = 15. Divide both sides by 3: x = 5. Check: 3 * 5 + 7 = 22.",
        "x = 5.",
    ),
    (
        "creative_writing",
        "creative_writing",
        "Write a four-line poem about a lighthouse keeper who talks to the sea.",
        "The keeper lights the lamp at dusk. He tells the sea about his day. The sea says nothing. He goes to bed.",
        "Each night he climbs to tend the flame,\nand tells the restless tide his name;\nthe sea replies in "
        "silver foam,\nand sings the lonely keeper home.",
    ),
    (
        "creative_writing",
        "creative_writing",
        "Describe a busy morning market in three sentences, using all five senses.",
        "The market opens at seven. Many people buy fruit there. It is busy.",
        "Stalls shout their prices over the clatter of crates while ripe peaches glow orange in the low sun. The "
        "air smells of fresh bread and wet cobblestones, and a vendor presses a cold slice of melon into your hand. "
        "Its sweetness lingers long after the bells of the church announce nine o'clock.",
    ),
)
ARENA_HARD_V2_BASELINES = ("smoke-baseline-hard", "smoke-baseline-creative")


def arena_hard_v2_records() -> list[dict[str, Any]]:
    """Arena-Hard-Auto v2.0 question.jsonl shape: ``{uid, category, subcategory, prompt}``, content-derived uids."""
    return [
        {"uid": sha256_hex(prompt)[:16], "category": category, "subcategory": subcategory, "prompt": prompt}
        for category, subcategory, prompt, _, _ in ARENA_HARD_V2
    ]


def markdown_counts(text: str) -> dict[str, Any]:
    """arena-hard-auto's answer metadata keys (token_len here counts words; nothing in the suite reads them)."""
    lines = text.splitlines()
    return {
        "token_len": len(text.split()),
        "header_count": {f"h{i}": sum(line.startswith("#" * i + " ") for line in lines) for i in range(1, 7)},
        "list_count": {
            "ordered": sum(line[:1].isdigit() and ". " in line[:4] for line in lines),
            "unordered": sum(line.startswith(("- ", "* ")) for line in lines),
        },
        "bold_count": {"**": text.count("**") // 2, "__": text.count("__") // 2},
    }


def arena_hard_v2_answers(which: int) -> list[dict[str, Any]]:
    """One smoke baseline's answers to every v2.0 smoke prompt, in arena-hard-auto's v2.0 answer layout."""
    model = ARENA_HARD_V2_BASELINES[which]
    records = []
    for (_, _, prompt, *answers), question in zip(ARENA_HARD_V2, arena_hard_v2_records(), strict=True):
        answer = answers[which]
        records.append(
            {
                "uid": question["uid"],
                "ans_id": sha256_hex(model + answer)[:22],
                "model": model,
                "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": {"answer": answer}}],
                "tstamp": 1750000000.0,
                "metadata": markdown_counts(answer),
            }
        )
    return records


def mt_bench_records() -> list[dict[str, Any]]:
    """FastChat MT-Bench question.jsonl shape, one question per category, ids 1..8."""
    return [{"question_id": i, **question} for i, question in enumerate(MT_BENCH, start=1)]


def arena_hard_records() -> list[dict[str, Any]]:
    """Arena-Hard-Auto v0.1 question.jsonl shape with content-derived hex ids."""
    return [
        {
            "question_id": sha256_hex(content)[:32],
            "category": "arena-hard-v0.1",
            "cluster": cluster,
            "turns": [{"content": content}],
        }
        for cluster, content in ARENA_HARD
    ]


def jsonl_text(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write JSON lines with fixed formatting so reruns are byte-identical."""
    path.write_text(jsonl_text(records), encoding="utf-8")


def write_jsonl_gz(path: Path, records: list[dict[str, Any]]) -> None:
    """JSON lines gzipped as HH ships them; no name or time in the gzip header, so reruns give the same content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as handle:
        handle.write(jsonl_text(records).encode("utf-8"))


def generate(out_dir: Path) -> list[Path]:
    """Write every smoke file into ``out_dir``; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    ultrafeedback = ultrafeedback_records(rng)
    hh = hh_records(rng) + [records[0] for records in hh_oddities().values()]
    files = {
        "ultrafeedback_smoke.jsonl": ultrafeedback,
        "ultrachat_smoke.jsonl": ultrachat_records(rng),
        "mt_bench_smoke_question.jsonl": mt_bench_records(),
        "arena_hard_smoke_question.jsonl": arena_hard_records(),
        "arena_hard_v2_smoke_question.jsonl": arena_hard_v2_records(),
        "arena_hard_v2_smoke_baseline_hard.jsonl": arena_hard_v2_answers(0),
        "arena_hard_v2_smoke_baseline_creative.jsonl": arena_hard_v2_answers(1),
    }
    written = []
    for name, records in files.items():
        write_jsonl(out_dir / name, records)
        written.append(out_dir / name)
    gzipped = {"hh_smoke.jsonl.gz": hh}
    gzipped.update({f"hh_oddities/{kind}.jsonl.gz": hh_plain() + odd for kind, odd in hh_oddities().items()})
    for name, records in gzipped.items():
        write_jsonl_gz(out_dir / name, records)
        written.append(out_dir / name)
    alpaca = out_dir / "alpaca_eval_smoke.json"
    alpaca.write_text(json.dumps(alpaca_eval_records(rng), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    written.append(alpaca)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    for path in generate(args.out_dir):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
