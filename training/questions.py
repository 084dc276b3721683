"""The question router: what kind of question was asked, and about what.

parse_question("what animal is this?")       -> Question("kind", "animal")
parse_question("what is this?")              -> Question("kind", None)       any concept
parse_question("what colour is the car?")    -> Question("colour", "car")
parse_question("is there a dog?")            -> Question("presence", "dog")
parse_question("is this a cat?")             -> Question("identity", "cat")
parse_question("why is the sky blue?")       -> Question("other", None)      the solvers say unsure
"""

import re
from dataclasses import dataclass

_ART = r"(?:(?:a|an|the|any|some)\s+)?"
_HERE = r"(?:this|that|these|those|it|they|shown|pictured|here|in\s+(?:the|this)\s+(?:picture|image|photo))"
_PATTERNS = [
    ("colour", rf"^(?:what|which)\s+colou?rs?\s+(?:is|are)\s+{_ART}(?:this\s+|that\s+)?(?P<x>.+?)$"),
    ("colour", rf"^what\s+is\s+the\s+colou?r\s+of\s+{_ART}(?P<x>.+?)$"),
    ("kind", r"^what\s+(?:is|are)\s+(?:this|that|these|those|it|shown|in\s+(?:the|this)\s+\w+)$"),
    ("kind", rf"^(?:what|which)\s+(?:kind\s+of\s+|type\s+of\s+|sort\s+of\s+)?(?P<x>[a-z][a-z ]*?)\s+"
             rf"(?:is|are)\s+{_HERE}(?:\s+.*)?$"),
    ("presence", rf"^(?:is|are)\s+there\s+{_ART}(?P<x>.+?)(?:\s+in\s+(?:the|this)\s+\w+)?$"),
    ("presence", rf"^(?:does|do)\s+(?:the|this)\s+\w+\s+(?:contain|show|have)\s+{_ART}(?P<x>.+?)$"),
    ("identity", rf"^(?:is|are)\s+(?:this|that|it|these|those)\s+{_ART}(?P<x>.+?)$"),
]  # fmt: skip
_COMPILED = [(kind, re.compile(p)) for kind, p in _PATTERNS]


@dataclass(frozen=True)
class Question:
    kind: str  # "kind" | "colour" | "presence" | "identity" | "other"
    target: str | None  # the category or the thing asked about, lower case; None when not named


def parse_question(text: str) -> Question:
    """Routes a question by its form (English, as the service's users ask them)."""
    q = re.sub(r"\s+", " ", text.strip().lower()).rstrip("?!. ")
    for kind, pattern in _COMPILED:
        m = pattern.match(q)
        if m:
            x = m.groupdict().get("x")
            return Question(kind, x.strip() if x else None)
    return Question("other", None)
