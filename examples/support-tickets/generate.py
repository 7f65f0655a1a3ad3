"""Generate the Lumora support-ticket example dataset (deterministic; standard library only).

    python examples/support-tickets/generate.py

Writes data/tickets.jsonl (the main export), data/tickets_extra.csv (a second export with
the answer as JSON text), data/planted.json and data/PLANTED.md.

Every clean ticket is labelled by the rules a human triager would follow:
- category: billing, shipping, returns, technical, account, or out_of_scope (not a Lumora
  support request; always answered with the refusal object).
- priority: urgent = fraud, a hacked account, a safety hazard or a legal/chargeback threat;
  high = a hard deadline, a parcel marked delivered but missing, a double charge, a device dead
  on arrival; low = a question, feedback or "no rush"; normal = everything else.
- order_id: the order number the customer wrote, in whatever form, normalised to ORD-dddddd.
- product: the canonical catalog name of the product the customer refers to.

On top of the clean tickets the export carries what real exports carry, listed in
planted.json: exact and whitespace-only duplicates, near duplicates, contradictory labels,
malformed lines (broken JSON, a stray log line, bad bytes, wrong types, missing fields),
personal data (emails, phone numbers, Luhn-valid card numbers, IBANs with valid check digits,
street addresses, IP addresses, names) and out-of-scope messages.
"""

from __future__ import annotations

import csv
import io
import json
import random
import string
from pathlib import Path

from phrases import (
    CATALOG,
    CLOSINGS,
    CONTEXT,
    GREETINGS,
    OUT_OF_SCOPE,
    PROBLEMS,
    PRODUCT_HINTS,
    REQUESTS,
    SUBJECTS,
    URGENCY,
)

SEED = 20261124
OUT = Path(__file__).parent / "data"
REFUSAL = {"category": "out_of_scope", "priority": "low", "order_id": None, "product": None}
FIRST_NAMES = ["Maya", "Tom", "Priya", "Lukas", "Sofia", "Jamal", "Elena", "Kenji", "Amara", "Oliver", "Ines",
               "Ravi", "Chloe", "Mateo", "Hannah", "Yusuf", "Greta", "Daniel", "Aiko", "Fatima", "Noah", "Lea"]
LAST_NAMES = ["Okafor", "Lindqvist", "Moreau", "Patel", "Novak", "Garcia", "Schneider", "Tanaka", "Brennan",
              "Haddad", "Kowalski", "Rossi", "Nguyen", "Fischer", "Adeyemi", "Santos", "Clarke", "Berg"]
STREETS = ["Elm Street", "Harbor Road", "Maple Avenue", "Kingsway", "Bergstrasse", "Rue des Lilas", "Mill Lane",
           "Cedar Court", "Station Road", "Oak Drive"]
CITIES = ["Springfield", "Riverton", "Lakeside", "Northbridge", "Fairview", "Brookhaven"]
CHANNELS = ["email", "email", "email", "chat", "web_form"]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    """A card number with the given prefix and a valid Luhn check digit."""
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def iban(country: str, bban: str) -> str:
    """An IBAN with correct mod-97 check digits, printed in groups of four."""
    rearranged = bban + country + "00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    check = 98 - int(numeric) % 97
    raw = f"{country}{check:02d}{bban}"
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_ticket = 10001
        self.customers = [f"C-{n:04d}" for n in self.rng.sample(range(1, 9999), 250)]
        self.planted: dict[str, list] = {"exact_duplicates": [], "near_duplicates": [], "contradictory": [],
                                         "malformed": [], "pii": [], "out_of_scope": []}

    # --- pieces ------------------------------------------------------------------------

    def ticket_id(self) -> str:
        self.next_ticket += self.rng.choice([1, 1, 1, 2, 3])
        return f"T-{self.next_ticket}"

    def created_at(self) -> str:
        r = self.rng
        return f"2026-{r.randint(1, 10):02d}-{r.randint(1, 28):02d}T{r.randint(6, 22):02d}:{r.randint(0, 59):02d}:00Z"

    def order_number(self) -> str:
        return f"{self.rng.randint(100000, 999999)}"

    def order_mention(self, digits: str) -> str:
        return self.rng.choice([f"ORD-{digits}", f"ORD-{digits}", f"ord {digits}", f"order #{digits}",
                                f"order number {digits}", f"#{digits}", f"{digits}", f"ORD {digits}"])

    def person(self) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"

    def email(self, name: str) -> str:
        first, last = name.lower().split()
        user = self.rng.choice([f"{first}.{last}", f"{first}{self.rng.randint(1, 99)}", f"{first[0]}{last}"])
        return f"{user}@{self.rng.choice(['example.com', 'example.org', 'mailbox.example', 'inbox.test'])}"

    def phone(self) -> str:
        r = self.rng
        return r.choice([f"(415) 555-{r.randint(100, 199):04d}", f"+44 20 7946 {r.randint(0, 999):04d}",
                         f"+49 30 {r.randint(1000000, 9999999)}", f"555.{r.randint(100, 999)}.{r.randint(1000, 9999)}",
                         f"+1 212-555-{r.randint(100, 199):04d}", f"+33 1 70 36 {r.randint(10, 99)} {r.randint(10, 99)}"])

    def card(self) -> str:
        number = self.rng.choice([luhn_complete("4111", 16, self.rng), luhn_complete("5500", 16, self.rng),
                                  luhn_complete("4000", 16, self.rng), luhn_complete("3400", 15, self.rng)])
        sep = self.rng.choice(["", " ", "-"])
        groups = [number[i : i + 4] for i in range(0, len(number), 4)]
        return sep.join(groups)

    def iban(self) -> str:
        r = self.rng
        return r.choice([iban("DE", "".join(r.choice(string.digits) for _ in range(18))),
                         iban("GB", "NWBK" + "".join(r.choice(string.digits) for _ in range(14))),
                         iban("FR", "".join(r.choice(string.digits) for _ in range(23)))])

    def address(self) -> str:
        return f"{self.rng.randint(2, 2999)} {self.rng.choice(STREETS)}, {self.rng.choice(CITIES)}"

    # --- a clean ticket ---------------------------------------------------------------

    def clean_ticket(self, category: str, priority: str) -> dict:
        r = self.rng
        problem_subject, problem = r.choice(PROBLEMS[category][priority])
        wants_order = "{order}" in problem or (category != "account" and r.random() < 0.5)
        wants_product = "{product}" in problem or (category != "account" and r.random() < 0.55)
        allowed = next((names for key, names in PRODUCT_HINTS.items() if key in problem), list(CATALOG))
        canonical = r.choice(allowed) if wants_product else None
        # Templates say "the {product}" / "my {product}": aliases lose their own article.
        product_text = r.choice(CATALOG[canonical]).removeprefix("the ") if canonical else r.choice(["order", "item", "purchase"])
        digits = self.order_number() if wants_order else None
        order_text = self.order_mention(digits) if digits else ""
        fill = {"product": product_text, "order": order_text, "amount": f"{r.randint(19, 1899)}.{r.choice(['00', '99', '49'])}",
                "days": str(r.randint(3, 21)), "weekday": r.choice(["Monday", "Tuesday", "Friday", "Saturday"])}
        sentences = []
        angry_weight = 0 if priority == "low" else 2
        tone = r.choices(["polite", "terse", "angry", "rambling", "plain"], weights=[4, 2, angry_weight, 1, 4])[0]
        if tone != "terse" and r.random() < 0.8:
            sentences.append(r.choice(GREETINGS[tone if tone in GREETINGS else "plain"]))
        if tone == "rambling" or r.random() < 0.25:
            sentences.append(r.choice(CONTEXT).format(**fill))
        sentences.append(problem.format(**fill))
        if digits and "{order}" not in problem:
            sentences.append(r.choice(["The order number is {order}.", "Order: {order}.", "(order {order})",
                                       "It was order {order}.", "My order number is {order}."]).format(**fill))
        if canonical and "{product}" not in problem:
            sentences.append(r.choice(["It's the {product}.", "This is about my {product}.", "Product: {product}.",
                                       "I bought the {product}."]).format(**fill))
        if priority in URGENCY and r.random() < 0.85:
            sentences.append(r.choice(URGENCY[priority]).format(**fill))
        if priority != "low" and (tone != "terse" or r.random() < 0.3):
            sentences.append(r.choice(REQUESTS[category]).format(**fill))
        if tone != "terse" and r.random() < 0.75:
            sentences.append(r.choice(CLOSINGS[tone if tone in CLOSINGS else "plain"]))
        body = self.shape(" ".join(sentences), tone)
        subject = problem_subject.format(**fill)
        if r.random() < 0.25:
            subject = r.choice(SUBJECTS[category]).format(**fill)
        if r.random() < 0.08:
            subject = r.choice(["help", "Re: your email", "question", "urgent!!", "(no subject)", "Hi"])
        output = {"category": category, "priority": priority, "order_id": f"ORD-{digits}" if digits else None,
                  "product": canonical}
        return {"ticket_id": self.ticket_id(), "customer_id": r.choice(self.customers), "channel": r.choice(CHANNELS),
                "created_at": self.created_at(), "subject": subject, "body": body, "output": output}

    def shape(self, body: str, tone: str) -> str:
        """Tone-specific surface: lowercase writers, shouting, paragraph breaks, small typos."""
        r = self.rng
        if tone == "terse" or r.random() < 0.1:
            body = body.lower()
        if tone == "angry" and r.random() < 0.3:
            first, _, rest = body.partition(". ")
            body = first.upper() + (". " + rest if rest else "")
        if len(body) > 220 and r.random() < 0.6:
            parts = body.split(". ")
            cut = max(1, len(parts) // 2)
            body = ". ".join(parts[:cut]) + ".\n\n" + ". ".join(parts[cut:])
        if r.random() < 0.12:
            body = self.typo(body)
        return body.replace("..", ".")

    def typo(self, text: str) -> str:
        words = text.split(" ")
        i = self.rng.randrange(len(words))
        w = words[i]
        if len(w) > 4 and w.isalpha() and not any(c.isdigit() for c in w):
            j = self.rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        return " ".join(words)

    def out_of_scope_ticket(self) -> dict:
        r = self.rng
        subject, body = r.choice(OUT_OF_SCOPE)
        if r.random() < 0.5:
            body = r.choice(["Hi, ", "Hello! ", "hey ", "Good morning, ", "Quick one: "]) + body
        if r.random() < 0.3:
            body += r.choice([" Thanks!", " Cheers.", " Thank you in advance.", " :)"])
        if r.random() < 0.2:
            body = body.lower()
        row = {"ticket_id": self.ticket_id(), "customer_id": r.choice(self.customers), "channel": r.choice(CHANNELS),
               "created_at": self.created_at(), "subject": subject, "body": body, "output": dict(REFUSAL)}
        self.planted["out_of_scope"].append(row["ticket_id"])
        return row

    # --- personal data ----------------------------------------------------------------

    def add_pii(self, row: dict) -> None:
        r = self.rng
        name = self.person()
        kinds = r.sample(["EMAIL", "PHONE", "CARD", "IBAN", "ADDRESS", "IP", "NAME"], k=r.choice([1, 1, 2, 2, 3]))
        extra = []
        for kind in kinds:
            if kind == "EMAIL":
                extra.append(r.choice(["You can email me at {v}.", "Reply to {v} please.", "my email is {v}"])
                             .format(v=self.email(name)))
            elif kind == "PHONE":
                extra.append(r.choice(["Call me on {v}.", "My number is {v}", "phone: {v}"]).format(v=self.phone()))
            elif kind == "CARD":
                extra.append(r.choice(["The card used was {v}.", "I paid with card {v}", "card no {v}"])
                             .format(v=self.card()))
            elif kind == "IBAN":
                extra.append(r.choice(["Please refund to my IBAN {v}.", "Bank account (IBAN): {v}"]).format(v=self.iban()))
            elif kind == "ADDRESS":
                extra.append(r.choice(["I live at {v}.", "Shipping address: {v}.", "deliver to {v} instead"])
                             .format(v=self.address()))
            elif kind == "IP":
                ip = f"{r.randint(11, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
                extra.append(r.choice(["My IP shows as {v} in the router log.", "login attempts came from {v}"])
                             .format(v=ip))
        body = row["body"] + " " + " ".join(extra)
        if "NAME" in kinds or r.random() < 0.5:
            body += f"\n\n{r.choice(['Best,', 'Thanks,', 'Regards,', 'Cheers,', '--'])}\n{name}"
            if "NAME" not in kinds:
                kinds.append("NAME")
        row["body"] = body
        self.planted["pii"].append({"ticket_id": row["ticket_id"], "types": sorted(kinds)})


def main() -> None:
    gen = Generator(SEED)
    r = gen.rng
    rows: list[dict] = []
    plan = {  # (category, priority) -> clean rows
        "billing": {"urgent": 16, "high": 36, "normal": 66, "low": 18},
        "shipping": {"urgent": 5, "high": 44, "normal": 68, "low": 16},
        "returns": {"urgent": 3, "high": 30, "normal": 74, "low": 20},
        "technical": {"urgent": 18, "high": 34, "normal": 72, "low": 16},
        "account": {"urgent": 20, "high": 16, "normal": 66, "low": 26},
    }
    for category, by_priority in plan.items():
        for priority, count in by_priority.items():
            rows.extend(gen.clean_ticket(category, priority) for _ in range(count))
    rows.extend(gen.out_of_scope_ticket() for _ in range(70))
    r.shuffle(rows)
    for row in r.sample(rows, 100):
        gen.add_pii(row)

    extra_rows = rows[-80:]
    rows = rows[:-80]
    rows = plant_defects(gen, rows)
    write_jsonl(gen, rows)
    write_csv(gen, extra_rows)
    (OUT / "planted.json").write_text(json.dumps(gen.planted, indent=2) + "\n")
    write_planted_md(gen, rows, extra_rows)


def plant_defects(gen: Generator, rows: list[dict]) -> list[dict]:
    """Duplicates, near duplicates and contradictions, spliced in at random places."""
    r = gen.rng
    clean = [row for row in rows if row["output"]["category"] != "out_of_scope"]
    additions: list[tuple[int, dict]] = []

    for i, original in enumerate(r.sample(clean, 18)):
        copy = json.loads(json.dumps(original))
        if i < 6:
            pass  # re-exported row: same ticket id, same bytes
        elif i < 12:
            copy["ticket_id"] = gen.ticket_id()  # submitted twice
        else:
            copy["ticket_id"] = gen.ticket_id()
            copy["body"] = r.choice([copy["body"].replace(" ", "  ", 2), copy["body"] + "  \n", "\t" + copy["body"]])
        gen.planted["exact_duplicates"].append([original["ticket_id"], copy["ticket_id"]])
        additions.append((r.randrange(len(rows)), copy))

    edits = [
        lambda b: b.replace("Hi", "Hello", 1) if "Hi" in b else "Hello, " + b,
        lambda b: b.rstrip(".!") + "!!",
        lambda b: b + " Thank you in advance.",
        lambda b: b.replace("please", "pls", 1) if "please" in b else b + " Please advise.",
        lambda b: b[0].lower() + b[1:],
        lambda b: "Good morning. " + b,
    ]
    for original in r.sample(clean, 25):
        copy = json.loads(json.dumps(original))
        copy["ticket_id"] = gen.ticket_id()
        copy["body"] = r.choice(edits)(copy["body"])
        gen.planted["near_duplicates"].append([original["ticket_id"], copy["ticket_id"]])
        additions.append((r.randrange(len(rows)), copy))

    for original in r.sample(clean, 8):
        copy = json.loads(json.dumps(original))
        copy["ticket_id"] = gen.ticket_id()
        out = copy["output"]
        if r.random() < 0.5:
            out["category"] = r.choice([c for c in ("billing", "shipping", "returns", "technical", "account")
                                        if c != out["category"]])
        else:
            out["priority"] = r.choice([p for p in ("low", "normal", "high", "urgent") if p != out["priority"]])
        gen.planted["contradictory"].append([original["ticket_id"], copy["ticket_id"]])
        additions.append((r.randrange(len(rows)), copy))

    for position, row in sorted(additions, key=lambda a: -a[0]):
        rows.insert(position, row)
    # A tenth of the export stores the answer as JSON text, formatted by hand.
    for row in r.sample(rows, len(rows) // 10):
        out = row["output"]
        keys = list(out)
        r.shuffle(keys)
        row["output"] = r.choice([
            json.dumps({k: out[k] for k in keys}),
            json.dumps({k: out[k] for k in keys}, indent=2),
            "{ " + ",   ".join(f'"{k}" : {json.dumps(out[k])}' for k in keys) + " }",
        ])
    return rows


MALFORMED_JSONL = [
    ("truncated JSON line", lambda row: json.dumps(row)[: len(json.dumps(row)) // 2].encode()),
    ("a log line, not JSON", lambda row: b"2026-05-02 14:11:09,112 WARN exporter: ticket batch 17 retried (timeout)"),
    ("empty line", lambda row: b""),
    ("output missing", lambda row: json.dumps({k: v for k, v in row.items() if k != "output"}).encode()),
    ("category not in the label set", lambda row: json.dumps({**row, "output": {**row["output"], "category": "refund"}}).encode()),
    ("output is not valid JSON text", lambda row: json.dumps({**row, "output": "{category: billing, priority: high"}).encode()),
    ("empty subject and body", lambda row: json.dumps({**row, "subject": "", "body": "   "}).encode()),
    ("output misses a required key", lambda row: json.dumps(
        {**row, "output": {k: v for k, v in row["output"].items() if k != "priority"}}).encode()),
    ("order_id in the wrong shape", lambda row: json.dumps({**row, "output": {**row["output"], "order_id": "48291"}}).encode()),
    ("non-UTF-8 bytes", lambda row: json.dumps(row).encode().replace(b'"body": "', b'"body": "caf\xe9 \xff\xfe ', 1)),
    ("body is a number", lambda row: json.dumps({**row, "body": 12345}).encode()),
    ("body is a list", lambda row: json.dumps({**row, "body": ["line one", "line two"]}).encode()),
    ("a JSON array, not an object", lambda row: json.dumps([row["subject"], row["body"]]).encode()),
]


def write_jsonl(gen: Generator, rows: list[dict]) -> None:
    r = gen.rng
    lines = [json.dumps(row, ensure_ascii=False).encode() for row in rows]
    donors = r.sample([row for row in rows if isinstance(row["output"], dict)], len(MALFORMED_JSONL))
    positions = sorted(r.sample(range(5, len(lines)), len(MALFORMED_JSONL)), reverse=True)
    for (defect, make), donor, position in zip(MALFORMED_JSONL, donors, positions, strict=True):
        bad = json.loads(json.dumps(donor))
        bad["ticket_id"] = gen.ticket_id()
        lines.insert(position, make(bad))
    # Line numbers are known only once every insert is done.
    for number, line in enumerate(lines, start=1):
        defect = classify_malformed(line)
        if defect:
            ticket = None
            try:
                ticket = json.loads(line).get("ticket_id") if line.strip().startswith(b"{") else None
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                pass
            gen.planted["malformed"].append({"where": f"tickets.jsonl line {number}", "ticket_id": ticket,
                                             "defect": defect})
    (OUT / "tickets.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def classify_malformed(line: bytes) -> str | None:
    """Name the planted defect a line carries (None for a well-formed ticket)."""
    if not line.strip():
        return "empty line"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "non-UTF-8 bytes"
    try:
        row = json.loads(text)
    except json.JSONDecodeError:
        return "a log line, not JSON" if not text.startswith("{") else "truncated JSON line"
    if not isinstance(row, dict):
        return "a JSON array, not an object"
    if "output" not in row:
        return "output missing"
    if not isinstance(row["body"], str):
        return "body is a number" if isinstance(row["body"], int) else "body is a list"
    if not row["subject"].strip() and not row["body"].strip():
        return "empty subject and body"
    out = row["output"]
    if isinstance(out, str):
        try:
            out = json.loads(out)
        except json.JSONDecodeError:
            return "output is not valid JSON text"
    if out.get("category") == "refund":
        return "category not in the label set"
    if "priority" not in out:
        return "output misses a required key"
    if out.get("order_id") is not None and not str(out["order_id"]).startswith("ORD-"):
        return "order_id in the wrong shape"
    return None


def write_csv(gen: Generator, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["ticket_id", "customer_id", "channel", "created_at", "subject", "body", "output"]
    writer.writerow(header)
    line = 2
    bad_at = set(gen.rng.sample(range(10, len(rows)), 3))
    for i, row in enumerate(rows):
        output = row["output"] if isinstance(row["output"], str) else json.dumps(row["output"])
        values = [row["ticket_id"], row["customer_id"], row["channel"], row["created_at"], row["subject"],
                  row["body"], output]
        if i in bad_at:
            kind = len([b for b in sorted(bad_at) if b <= i])
            if kind == 1:
                values[-1] = ""
                defect = "output cell empty"
            elif kind == 2:
                values = values[:5]
                defect = "too few columns (body and output missing)"
            else:
                values = [*values, "EXTRA"]
                defect = "too many columns"
            gen.planted["malformed"].append({"where": f"tickets_extra.csv line {line}", "ticket_id": row["ticket_id"],
                                             "defect": defect})
        before = buffer.tell()
        writer.writerow(values)
        line += buffer.getvalue()[before:].count("\n")
    (OUT / "tickets_extra.csv").write_text(buffer.getvalue(), encoding="utf-8")


def write_planted_md(gen: Generator, rows: list[dict], extra_rows: list[dict]) -> None:
    p = gen.planted
    pii_types: dict[str, int] = {}
    for item in p["pii"]:
        for kind in item["types"]:
            pii_types[kind] = pii_types.get(kind, 0) + 1
    text = f"""# What is planted in this example

Generated by `generate.py` (seed {SEED}); `planted.json` lists every item by ticket id or line.

| defect | count |
| --- | --- |
| rows in tickets.jsonl (incl. defects) | {len(rows) + len(MALFORMED_JSONL)} |
| rows in tickets_extra.csv | {len(extra_rows)} |
| exact duplicates (6 same id, 6 new id, 6 whitespace-only differences) | {len(p['exact_duplicates'])} |
| near duplicates (light edits, same answer) | {len(p['near_duplicates'])} |
| contradictory labels (same text, other category or priority) | {len(p['contradictory'])} |
| malformed lines / rows | {len(p['malformed'])} |
| tickets with personal data | {len(p['pii'])} ({', '.join(f'{k} {v}' for k, v in sorted(pii_types.items()))}) |
| out-of-scope tickets (refusal answer) | {len(p['out_of_scope'])} |

About a tenth of the JSONL answers are stored as JSON text with shuffled keys and odd spacing.
All people, numbers and addresses are invented: 555 and reserved phone ranges, example domains,
card numbers that pass the Luhn check on test-card prefixes, IBANs with computed check digits.
"""
    (OUT / "PLANTED.md").write_text(text)


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    main()
