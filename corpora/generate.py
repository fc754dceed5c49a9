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

The text is built from templates and word lists in this file with a fixed
seed, using only the standard library, so it is fully reproducible.

Usage::

    python corpora/generate.py          # (re)write the corpus files
    python corpora/generate.py --check  # exit 1 if committed files differ
"""

import argparse
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240611

# The general corpus's seed-fact probe strings.  They may appear in train.txt
# (that is how the facts are taught) but never in valid.txt, so that
# validation measures generalisation rather than recitation.
PROBE_SENTENCES = ["The cat sat on the mat.", "The dog wagged its tail."]
PROBE_PAIRS = [("I have a cat.", "It loves to purr.")]


# ---------------------------------------------------------------------------
# Template machinery
# ---------------------------------------------------------------------------
#
# A template is a string with {slot} placeholders.  A slot is filled from the
# document context (fixed for the whole document, e.g. the main character's
# name and pronoun) or, failing that, by a fresh random draw from WORDS.
# A WORDS entry is a "|"-separated list of options; "option*5" gives an
# option weight 5 (default 1).  Options may themselves contain slots.
# A context value starting with "@" names a WORDS list to draw from afresh
# each time (used for pet-specific lists such as "@love_cat").

SLOT = re.compile(r"\{(\w+)\}")


def parse_options(spec):
    """Split an "a*3|b|c" word-list spec into (options, weights) so lists stay
    compact and readable while still allowing skewed frequencies."""
    options, weights = [], []
    for raw in spec.split("|"):
        raw = raw.strip()
        weight = 1.0
        match = re.fullmatch(r"(.*)\*(\d+(?:\.\d+)?)", raw)
        if match:
            raw, weight = match.group(1), float(match.group(2))
        options.append(raw)
        weights.append(weight)
    return options, weights


class Filler:
    """Fills templates from a word table with one seeded RNG, so every random
    decision in a corpus comes from a single reproducible stream."""

    def __init__(self, rng, words):
        self.rng = rng
        self.table = {name: parse_options(spec) for name, spec in words.items()}

    def draw(self, name):
        """Draw one option from a named word list (weighted)."""
        if name not in self.table:
            raise KeyError(f"unknown slot {{{name}}}")
        options, weights = self.table[name]
        return self.rng.choices(options, weights)[0]

    def fill(self, template, ctx, depth=0):
        """Resolve every {slot} in a template, recursively, using ctx first."""
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
        """A template may be a list of alternatives (a plain or weighted
        string list); pick one so openings vary between documents."""
        if isinstance(alternatives, str):
            return alternatives
        return self.rng.choice(alternatives)

    def story(self, ctx, first, middle, last=(), k=(2, 4), p_last=0.5):
        """Build one document: the fixed opening sentences in order, then k
        sentences sampled from the middle pool *in pool order* (pools are
        written in narrative order, so the story still flows), then maybe a
        closing sentence."""
        sents = [self.fill(self.pick(t), ctx) for t in first]
        n = min(self.rng.randint(*k), len(middle))
        for i in sorted(self.rng.sample(range(len(middle)), n)):
            sents.append(self.fill(self.pick(middle[i]), ctx))
        if last and self.rng.random() < p_last:
            sents.append(self.fill(self.pick(last), ctx))
        return [tidy(s) for s in sents]


def tidy(sentence):
    """Normalise spacing and capitalise the first letter, so templates can be
    written in lower case and start with a pronoun or slot."""
    s = re.sub(r"\s+", " ", sentence).strip()
    s = s.replace(" ,", ",").replace(" .", ".")
    return s[0].upper() + s[1:]


def person(filler, female=None):
    """Make a document context for a named person, so later sentences can
    refer back with the right pronouns ({name}, {p}, {o}, {g})."""
    if female is None:
        female = filler.rng.random() < 0.5
    name = filler.draw("name_f" if female else "name_m")
    if female:
        return {"name": name, "p": "she", "o": "her", "g": "her"}
    return {"name": name, "p": "he", "o": "him", "g": "his"}


def relative(filler):
    """A family member seen from the narrator ("my mother"), with pronouns;
    gives first-person family stories without a proper name."""
    rel, female = filler.rng.choice(RELATIVES)
    ctx = {"name": "my " + rel}
    ctx.update({"p": "she", "o": "her", "g": "her"} if female
               else {"p": "he", "o": "him", "g": "his"})
    return ctx


RELATIVES = [("mother", True), ("father", False), ("sister", True),
             ("brother", False), ("grandmother", True), ("grandfather", False),
             ("aunt", True), ("uncle", False), ("mum", True), ("dad", False)]


# ---------------------------------------------------------------------------
# General corpus: word lists
# ---------------------------------------------------------------------------

GENERAL_WORDS = {
    # people
    "name_f": "Anna|Mary|Emma|Lucy|Sara|Grace|Lily|Rose|Kate|Amy|Ella|Jane|"
              "Nora|Ruth|Alice|Clara|Molly|Hannah|Sophie|Zoe|Maya|Laura|Helen|"
              "Julia|Ivy|Eva|Mia|Olivia|Chloe|Leah|Maria|Ada|Iris|Tessa|Beth|"
              "Martha|Fiona|Greta|Hazel|Isla|Jenny|Karen|Linda|Megan|Naomi|"
              "Paula|Rita|Sally|Tina|Una|Vera|Wendy|Yasmin|Esther|Dora|Edith",
    "name_m": "Tom|Sam|Ben|Jack|Leo|Max|Adam|David|Peter|Paul|Mark|Noah|Oliver|"
              "Harry|Jacob|Daniel|Luke|Owen|Ryan|Henry|Oscar|Theo|Finn|Hugo|"
              "Alex|Ethan|Joe|Simon|Victor|Carl|Felix|Arthur|Eli|Milo|Ivan|"
              "Aaron|Brian|Colin|Dennis|Edward|Frank|George|Gordon|Ian|Kevin|"
              "Lewis|Martin|Nathan|Patrick|Robert|Stephen|Walter|William|Rudy",
    "anyname": "{name_f}|{name_m}",
    "kid": "the children|the kids|the twins|my little brother|my cousins|"
           "the boys|the girls|our friends",
    "people": "families|tourists|students|workers|children|old people|"
              "shoppers|visitors|people going to work",
    "neighbour": "our neighbour|the old man next door|the woman across the "
                 "street|Mrs {surname}|Mr {surname}|the postman|the baker",
    "surname": "Brown|Green|Smith|Hill|Wood|Baker|Fisher|Carter|Miller|Gray|"
               "Taylor|Parker|Clark|Hall|Young|King|Wright|Turner|Moore|Reed|"
               "Cooper|Ward|Harper|Lane|Bell|Price|Webb|Fox|Hunt|Lloyd|Marsh",
    "job": "nurse|teacher|doctor|baker|builder|driver|farmer|cook|painter|"
           "gardener|librarian|postman|shopkeeper|mechanic|dentist|waiter|"
           "police officer|vet|pilot|engineer|writer|tailor|carpenter|barber|"
           "plumber|electrician|farmer|fisherman|cleaner|chemist|singer|"
           "artist|judge|banker|lawyer|scientist|firefighter|bus driver",

    # time
    "day": "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday",
    "month": "January|February|March|April|May|June|July|August|September|"
             "October|November|December",
    "season": "spring|summer|autumn|winter",
    "time_start": "In the morning|Early in the morning|After breakfast|"
                  "At lunchtime|In the afternoon|In the evening|Last week|"
                  "Yesterday|This morning|On {day}|On {day} morning|"
                  "On {day} afternoon|One cold morning|One warm evening|"
                  "Last {season}|Every {day}|Before school|After work|"
                  "At the weekend|Early on {day}|Late on {day}",
    "time_end": "in the morning|after lunch|in the afternoon|on {day}|"
                "before dinner|at the weekend|after school|early on {day}|"
                "last {day}|on a rainy day",
    "clock": "six|seven|eight|nine|ten|eleven|noon|one|two|three|four|five|"
             "half past eight|a quarter to nine|half past four",
    "duration": "two hours|three hours|an hour|half an hour|most of the day|"
                "forty minutes|twenty minutes|all morning",
    "num_word": "two|three|four|five",
    "num_small": "two|three|four|five|six|seven|eight|nine|ten",

    # description
    "color": "red|blue|green|yellow|white|black|brown|grey|orange|pink|"
             "purple|dark blue|pale green",
    "kind_adj": "kind|friendly|busy|cheerful|helpful|patient|tired|polite|"
                "quiet|funny",
    "feel": "happy|tired|hungry|cold|warm|sleepy|proud|calm|glad|excited|"
            "pleased|bored|nervous|thirsty|worried|cheerful|relaxed|"
            "surprised|grateful|curious|lonely|content|sad|cross",
    "nice": "nice|lovely|pleasant|quiet|busy|long|fine|happy|good",

    # town
    "town": "the town|the village|our town|the city|the old town|Millbrook|"
            "Ashford|Greenhill|Riverton|Oakfield|Stonebridge",
    "city": "the city|Millbrook|Ashford|Greenhill|Riverton|Oakfield|"
            "Stonebridge|Westport|Brightwater|Northam|Elmstead|Fairford|"
            "Hollowmere|Kingsbury|Larchmont|Pinewood|Redcliff|Sandholm|"
            "Thornbury|Willowby|Cobham|Dunmore",
    "street": "Main Street|High Street|Mill Lane|Church Road|Park Road|"
              "Station Road|River Street|Oak Avenue|Market Square|Hill Road|"
              "Bridge Street|Elm Grove|Queen Street|Garden Lane|Orchard Way|"
              "Castle Street|Brook Lane|Meadow Close|North Road|Canal Walk",
    "shop": "bakery|market|baker's|butcher's|grocer's|corner shop|"
            "supermarket|bookshop|chemist|post office|flower shop|shoe shop|"
            "toy shop|fish shop|hardware shop",
    "town_place": "library|station|church|school|town hall|post office|"
                  "bridge|fountain|museum|cinema|park gate|bus stop|"
                  "swimming pool|clock tower|river|market square",
    "business": "bakery|café|bookshop|toy shop|flower shop|ice cream shop|"
                "bike shop|pizza place|tea room|gym|hair salon|music shop",
    "goods": "fresh bread and cakes|coffee and warm pies|old and new books|"
             "toys and games|flowers and plants|ice cream in twenty flavours|"
             "bikes and helmets|hot pizza|tea and scones|guitars and pianos",
    "event": "summer fair|book sale|flower show|music festival|football "
             "match|farmers' market|street party|school play|bike race|"
             "village fete|charity run|craft fair|dog show|food festival|"
             "fireworks night|spring parade|quiz night|carol concert|"
             "vegetable show|art exhibition",
    "vehicle": "bus|train|tram|taxi|car|bike",

    # food
    "fruit": "apples|pears|bananas|oranges|grapes|plums|cherries|lemons|"
             "strawberries|peaches|melons|apricots|blueberries|raspberries|"
             "figs|limes|mangoes|pineapples|blackberries|kiwis",
    "veg": "carrots|onions|potatoes|peas|beans|tomatoes|leeks|cabbage|"
           "mushrooms|peppers|spinach|garlic|cucumbers|celery|broccoli|"
           "pumpkins|beetroot|radishes|courgettes|sweetcorn|parsnips|turnips",
    "food_item": "{fruit}|{veg}|bread|milk|eggs|cheese|butter|rice|flour|"
                 "sugar|tea|coffee|honey|jam|fish|chicken|a cake|biscuits|"
                 "yoghurt|pasta|noodles|oats|sausages|ham|bacon|salmon|nuts|"
                 "raisins|olives|soup|crisps|lemonade|orange juice|buns|"
                 "muffins|chocolate|a loaf of bread|a bag of flour|sardines",
    "dish": "soup|a stew|a pie|pasta|a curry|fish and chips|a roast|pancakes|"
            "an omelette|a salad|rice and beans|a pizza|a fruit cake|"
            "vegetable soup|a lemon tart|sausages and mash|a fish pie|"
            "noodles with ginger|a cheese sandwich|dumplings|a bean stew|"
            "a chocolate cake|porridge with honey|baked potatoes|a rice "
            "pudding|tomato soup|a chicken pie|a plum crumble",
    "smell": "fresh bread|onions|warm spices|baking|coffee|apple pie|garlic|"
             "roast chicken|toast|cinnamon",
    "meal": "breakfast|lunch|dinner|supper|tea",

    # home
    "room": "kitchen|living room|hall|bedroom|bathroom|garden|attic|cellar|"
            "study|dining room|porch|garage|spare room|landing",
    "furniture": "chair|table|sofa|bed|shelf|desk|cupboard|lamp|armchair|"
                 "bookcase|stool|bench",
    "house_thing": "a new lamp|a red rug|a big mirror|an old clock|a "
                   "painting of the sea|a bowl of fruit|a piano|a tall "
                   "plant|a photo of my grandparents|a wooden bench",
    "chore": "washed the dishes|swept the floor|made the beds|cleaned the "
             "windows|did the washing|tidied the living room|dusted the "
             "shelves|fixed the gate|painted the fence|hung up the washing",

    # garden and nature
    "plant": "roses|tulips|beans|tomatoes|sunflowers|lettuce|potatoes|"
             "daisies|herbs|strawberries|an apple tree|a small hedge",
    "garden_spot": "fence|back door|shed|gate|wall|pond|path|kitchen window",
    "bird": "robin|blackbird|sparrow|thrush|pigeon|crow|wren|blue tit|magpie|"
            "starling|finch|swallow|woodpecker|owl|jay|heron|swan|goose",
    "tree": "apple|oak|pear|cherry|plum|old|beech|birch",
    "nature_place": "the woods|the hills|the fields|the river|the lake|"
                    "the meadow|the forest|the valley|the moors|the "
                    "orchard|the marshes|the cliffs|the heath|the common",

    # weather words used in several topics
    "weather_adj": "sunny|warm|cold|windy|rainy|cloudy|bright|grey|foggy|"
                   "wet|hot|frosty|mild|stormy",
}

# Pet facts.  Each pet has its own "loves", sounds, beds and so on, so that
# a pet introduction is followed by sentences that fit that animal.
PETS = {
    #        weight in pet stories
    "cat": 36, "dog": 26, "rabbit": 6, "parrot": 4, "hamster": 5,
    "goldfish": 4, "tortoise": 3, "pony": 2, "kitten": 5, "puppy": 5,
    "budgie": 2, "guinea pig": 3,
}
PET_KIND = {"kitten": "cat", "puppy": "dog", "budgie": "parrot",
            "guinea pig": "hamster"}

PET_WORDS = {
    "love_cat": "purr*30|sleep in the sun*6|chase mice*4|sit on the mat by "
                "the window*3|play with string*3|climb the fence*2|watch the "
                "birds*3|curl up on the sofa*2|drink warm milk*2|sleep on my "
                "bed*2|hide in boxes*2|sit on the mat*2",
    "love_dog": "run in the park*10|chase the ball*6|swim in the river*3|"
                "play with the children*4|dig in the garden*3|go for long "
                "walks*5|chew old shoes*2|fetch sticks*4|sleep by the fire*2|"
                "roll in the grass*2",
    "love_rabbit": "eat carrots|hop around the garden|dig in the soft earth|"
                   "nibble fresh grass|sit in the sun",
    "love_parrot": "talk|sing in the morning|copy our words|eat seeds|"
                   "whistle songs|sit on my shoulder",
    "love_hamster": "run on its wheel|hide food in its cheeks|sleep all "
                    "day|climb its little ladder|eat seeds",
    "love_goldfish": "swim round its bowl|eat small flakes|hide behind the "
                     "plants|swim near the glass",
    "love_tortoise": "eat lettuce|sleep in the warm grass|walk slowly round "
                     "the garden|eat dandelions",
    "love_pony": "gallop in the field|eat apples|roll in the grass|eat hay",

    "sound_cat": "meows|purrs|cries at the door",
    "sound_dog": "barks|whines|scratches at the door",
    "sound_rabbit": "thumps its feet|sits by its bowl",
    "sound_parrot": "squawks|calls my name|shouts hello",
    "sound_hamster": "squeaks|rattles its cage",
    "sound_goldfish": "swims to the top",
    "sound_tortoise": "walks to the kitchen door",
    "sound_pony": "neighs|stamps its feet",

    "bed_cat": "on the mat by the door*6|on the mat*4|on my bed|on the sofa|"
               "in a basket",
    "bed_dog": "in a basket by the fire|on the rug|in the hall|by the back "
               "door|on an old blanket",
    "bed_rabbit": "in a hutch in the garden|in a box of straw",
    "bed_parrot": "in a big cage by the window|on a perch in the kitchen",
    "bed_hamster": "in a nest of paper|in a little wooden house",
    "bed_goldfish": "under a small plant in its bowl|near the bottom of its "
                    "tank",
    "bed_tortoise": "in a box of hay|under the hedge",
    "bed_pony": "in the stable|in the barn",

    "coat_cat": "soft {pet_color} fur|long {pet_color} fur|a white nose|"
                "green eyes|a long tail",
    "coat_dog": "short {pet_color} fur|floppy ears|a wet black nose|a "
                "waggy tail|big brown eyes",
    "coat_rabbit": "long soft ears|white fur|a pink nose",
    "coat_parrot": "bright green feathers|a red head|a curved beak",
    "coat_hamster": "tiny paws|golden fur|round cheeks",
    "coat_goldfish": "shiny orange scales|a long tail",
    "coat_tortoise": "a hard brown shell|a wrinkly neck",
    "coat_pony": "a long mane|a brown coat",

    "food_cat": "fish|chicken|milk|cat food",
    "food_dog": "meat|biscuits|a bone|dog food",
    "food_rabbit": "carrots|lettuce|hay|apples",
    "food_parrot": "seeds|grapes|nuts",
    "food_hamster": "seeds|nuts|a bit of apple",
    "food_goldfish": "fish flakes",
    "food_tortoise": "lettuce|strawberries|dandelions",
    "food_pony": "hay|apples|carrots|oats",

    "pet_color": "grey|black|white|ginger|brown|golden|spotted|striped",
    "pet_adj": "small|little|big|old|young|fluffy|lazy|clever|funny|"
               "friendly|shy|noisy|sleepy|happy|black|white|grey|brown|"
               "ginger|tiny|gentle|playful",
    "pet_name": "Tom|Max|Bella|Daisy|Milo|Coco|Lucky|Pepper|Luna|Oscar|"
                "Biscuit|Ginger|Sunny|Rosie|Buddy|Smudge|Tiger|Poppy|Rex|Bob",
    "pet_source": "a farm near {town}|an animal shelter|a friend|"
                  "our neighbour|a pet shop in {town}|my aunt",
    "pet_dislike": "loud noises|the rain|baths|the vacuum cleaner|"
                   "thunder|strangers|the vet|fireworks|cold water|"
                   "the neighbour's cat|being alone|the hairdryer",
    "baby_age": "very small|only a few weeks old|a baby|just a year old",
    "pet_trick": "open the kitchen door|find its way home|sit when we ask|"
                 "tell when someone is sad|hear the fridge from anywhere|"
                 "sleep almost anywhere|climb onto the roof",
}

GENERAL_WORDS.update(PET_WORDS)

# The "cat on the mat" and "dog wags its tail" scenes.
GENERAL_WORDS.update({
    "cat_np": "the cat*40|the old cat*5|a cat*5|our cat*5|the grey cat*3|"
              "the little cat*3|the black cat*3|my cat*4|the fat cat*2|"
              "the lazy cat*3|the ginger cat*2|the white cat*2|the sleepy "
              "cat*2|the kitten*2",
    "cat_sat": "sat*70|slept*8|lay*6|sat quietly*4|curled up*4|sat down*4|"
               "dozed*3",
    "mat_place": "mat*60|mat by the door*8|mat near the fire*5|mat in the "
                 "hall*5|mat in the sun*4|mat by the window*3|rug*3|sofa*2|"
                 "chair*2|windowsill*2|bed*1|wall*1|step*1",
    "cat_act": "licked its paws|washed its face|closed its eyes|stretched "
               "and yawned|watched the birds in the garden|purred softly|"
               "flicked its tail|looked at the door",
    "dog_np": "the dog*40|the happy dog*6|my dog*6|our dog*5|the old dog*4|"
              "the little dog*4|the big dog*3|a dog*3|the brown dog*3|the "
              "puppy*3|the farm dog*2|the young dog*2",
    "tail_end": "*40|happily*6|when {name} came home*6|at the children*4|"
                "and barked*4|as the door opened*4|all the way home*2|"
                "when it saw the ball*3|slowly*2|and ran to the gate*3",
    "dog_act": "ran to the door|barked at the {dog_target}|jumped up and "
               "down|ran round the garden|lay down on the rug|sniffed the "
               "grass|brought back a stick|looked up at {name}",
    "dog_target": "postman|cat next door|birds|wind|mailbox|neighbour's dog",
    "cat_feel": "warm and happy|warm and sleepy|safe and warm|comfortable|"
                "out of the wind|cosy|quiet and content",
    "mat_desc": "soft and warm|old and worn|red and blue|new and thick|warm "
                "from the sun|a present from grandmother|made of wool|"
                "covered in grey hairs",
    "outside_scene": "rain was falling on the roof|the wind was blowing|"
                     "children were playing in the street|a {bird} sang in "
                     "the {tree} tree|the postman walked past|snow covered "
                     "the garden|a car went slowly by|the church bell rang",
    "cat_treat": "a bowl of milk|a little fish|some chicken|a saucer of "
                 "cream|a cat biscuit|some fresh water",
    "home_act": "make {meal}|read the paper|tie {g} shoes|water the plants|"
                "write a letter|wash the dishes|sweep the floor|fold the "
                "washing|play the {instrument}|pack {g} bag",
    "stroke": "stroked its back|scratched its ears|read a book|had a cup "
              "of tea|talked to it softly",
    "disturb": "the phone rang|the doorbell rang|the kettle boiled|the "
               "children came home|the dog barked|it started to rain|"
               "the radio was loud",
    "heat": "fire*5|stove|radiator|heater|kitchen door",
    "evening_event": "the sun went down|it got dark|the lamps were lit|"
                     "the clock struck nine|everyone went to bed",
    "door": "door|gate|window|front door|garden gate",
    "day_part": "morning|afternoon|day|evening",
    "dog_treat": "a biscuit|a bone|a piece of cheese|a bowl of water|some "
                 "meat|a dog treat",
    "walk_place": "park|river|woods|beach|field|shops|lake|hill",
    "toy": "a ball|a stick|an old shoe|a rubber ring|a red ball|a frisbee",
    "paw_state": "muddy|wet|covered in sand|dirty from the garden|cold",
    "dog_praise": "good|very good|clever|loyal|friendly|gentle",
})


# ---------------------------------------------------------------------------
# General corpus: topics (each returns one document as a list of sentences)
# ---------------------------------------------------------------------------

def owner_ctx(f):
    """Pick who owns the pet.  "I" is the most common owner because the NSP
    probe starts with "I have a cat."."""
    owners = [("I have", "I", 50), ("We have", "we", 20),
              ("My sister has", "my sister", 5), ("My brother has",
              "my brother", 5), ("My grandmother has", "my grandmother", 4),
              ("My uncle has", "my uncle", 3), ("Our neighbour has",
              "our neighbour", 4), ("My friend {anyname} has", "my friend", 5),
              ("My aunt has", "my aunt", 4)]
    have, own, _ = f.rng.choices(owners, [o[2] for o in owners])[0]
    return have, own


def doc_pet_intro(f):
    """Someone introduces a pet, then says what it loves.  Teaches the NSP
    seed pair ("I have a cat." -> "It loves to purr.") and its variants."""
    pets = list(PETS)
    pet = f.rng.choices(pets, [PETS[p] for p in pets])[0]
    kind = PET_KIND.get(pet, pet)
    have, own = owner_ctx(f)
    adj = f.draw("pet_adj") + " " if f.rng.random() < 0.4 else ""
    ctx = {"have": have, "own": own, "pet": pet,
           "love": "@love_" + kind, "sound": "@sound_" + kind,
           "bed": "@bed_" + kind, "coat": "@coat_" + kind,
           "pfood": "@food_" + kind}
    article = "an" if adj[:1] in "aeiou" and adj else "a"
    first = [have + " " + article + " " + adj + "{pet}.",
             ["it loves to {love}."] * 4 + ["it likes to {love}."]]
    middle = [
        "its name is {pet_name}.",
        "it is {num_small} years old.",
        "it has {coat}.",
        "{own} got it from {pet_source}.",
        "{own} got it when it was {baby_age}.",
        "it can {pet_trick}.",
        "it {sound} when it is hungry.",
        "every evening it eats some {pfood}.",
        "at night it sleeps {bed}.",
        "it does not like {pet_dislike}.",
        "everyone in the house loves it.",
    ]
    if kind == "dog":
        middle.insert(5, "when I come home, it wags its tail.")
        middle.insert(6, "it always wags its tail when it sees the lead.")
    if kind == "cat":
        middle.insert(6, "in the afternoon it sits on the mat by the door.")
        middle.insert(6, "it often sits on the mat in the kitchen.")
    last = ["it is part of the family.", "it is a very good {pet}.",
            "{own} cannot imagine the house without it.",
            "it is the best {pet} in the street."]
    return f.story(ctx, first, middle, last, k=(1, 4))


def doc_cat_mat(f):
    """A cat settles on the mat.  Makes "the cat sat on the ___" strongly
    predict "mat", with enough variation that it is learned, not recited."""
    ctx = person(f)
    opener = ["{cat_np} {cat_sat} on the {mat_place}."] * 5 + [
        "{time_start} {cat_np} {cat_sat} on the {mat_place}.",
        "when {name} came in, {cat_np} sat on the mat.",
        "as usual, {cat_np} sat on the {mat_place}."]
    middle = [
        "it {cat_act}.",
        "it was {cat_feel} there.",
        "the mat was {mat_desc}.",
        "outside, {outside_scene}.",
        "{name} gave it {cat_treat}.",
        "it watched {name} {home_act}.",
        "{name} sat down beside it and {stroke}.",
        "after a while it {cat_act}.",
        "it did not want to move, even when {disturb}.",
        "{dog_np} lay on the rug next to it.",
        "nobody could make it leave the mat.",
        "later it slept on the mat by the {heat}.",
        "when {evening_event}, it went to sleep.",
    ]
    last = ["it is always there in the {season}.", "that mat is its "
            "favourite place.", "the cat sat on the mat until dinner."]
    return f.story(ctx, [opener], middle, last, k=(2, 5))


def doc_dog_tail(f):
    """A dog wags its tail.  Makes "The dog wagged its" predict "tail"."""
    ctx = person(f)
    opener = ["{dog_np} wagged its tail {tail_end}."] * 5 + [
        "when {name} came home, {dog_np} wagged its tail.",
        "{time_start} {dog_np} wagged its tail {tail_end}.",
        "{dog_np} saw {name} and wagged its tail."]
    middle = [
        "it had waited by the {door} all {day_part}.",
        "it {dog_act}.",
        "it was very happy to see {name}.",
        "{name} gave it {dog_treat}.",
        "{name} patted its head and scratched its ears.",
        "it wanted to go for a walk to the {walk_place}.",
        "{name} threw {toy}, and it ran after it.",
        "its paws were {paw_state}.",
        "then it {dog_act}.",
        "they walked together to the {walk_place}.",
        "later it slept by the {heat}.",
        "it is a {dog_praise} dog.",
    ]
    last = ["it wags its tail every time {name} comes home.",
            "the dog wagged its tail again."]
    return f.story(ctx, [opener], middle, last, k=(2, 5))


def doc_errand(f):
    """A person goes shopping in town: everyday vocabulary and a named
    character carried through the story by pronouns."""
    ctx = person(f)
    first = [["{time_start} {name} went to the {shop}.",
              "{name} walked to the {shop} {time_end}.",
              "{name} needed {food_item}, so {p} went to the {shop}."]]
    middle = [
        "{p} took {g} {color} bag with {o}.",
        "the streets of {town} were {nice} and {weather_adj}.",
        "at the {shop} {p} bought {food_item} and {food_item}.",
        "the shopkeeper was very {kind_adj}.",
        "{p} met {neighbour} near the {town_place}.",
        "they talked about the {event} for a while.",
        "on the way home {p} stopped at the {shop}.",
        "{p} also bought some {fruit} for {g} {rel}.",
        "the bag was heavy, but {p} carried it all the way home.",
    ]
    last = ["at home {p} put everything away.",
            "it was a busy but {nice} morning.",
            "{p} was {feel} when {p} got home."]
    ctx["rel"] = "@rel_word"
    return f.story(ctx, first, middle, last, k=(2, 4))


WEATHER = {
    "rain": (["it rained all day in {town}.", "heavy rain fell on {town} "
              "{time_end}.", "the rain started early on {day}."],
             ["the streets were wet and grey.",
              "people walked fast under their umbrellas.",
              "water ran down the windows of the {business}.",
              "{kid} stayed inside and played games.",
              "the river was high and brown.",
              "by evening the rain had stopped.",
              "the garden smelled fresh after the rain."]),
    "snow": (["snow fell on {town} in the night.", "it snowed all morning "
              "on {day}.", "the first snow of {season} came early."],
             ["the roofs and gardens were white.",
              "{kid} made a snowman in the park.",
              "the buses were late because of the ice.",
              "people cleared the paths with shovels.",
              "the birds looked for food in the snow.",
              "we drank hot chocolate by the window.",
              "by the next day most of the snow had melted."]),
    "sun": (["it was a hot and sunny day in {town}.", "the sun shone all "
             "day on {day}.", "the sky was clear and blue {time_end}."],
            ["many people went to the park.",
             "{kid} played in the fountain.",
             "the ice cream shop had a long queue.",
             "old people sat on the benches in the shade.",
             "the grass in the park turned yellow.",
             "we ate our lunch outside in the garden.",
             "in the evening the air was still warm."]),
    "wind": (["a strong wind blew through {town} on {day}.", "it was very "
              "windy {time_end}.", "the wind came from the hills in the "
              "night."],
             ["it blew leaves all over the streets.",
              "a tree fell across {street}.",
              "people held on to their hats.",
              "the washing flew off the line.",
              "the windows rattled all night.",
              "by morning the wind had gone."]),
    "fog": (["a thick fog covered {town} in the morning.", "it was foggy "
             "and cold on {day}."],
            ["you could not see the end of the street.",
             "the cars drove slowly with their lights on.",
             "the church bells sounded far away.",
             "the trains were late.",
             "by noon the fog began to lift.",
             "then the sun came out at last."]),
    "storm": (["there was a big storm on {day} night.", "a storm came over "
               "{town} in the evening."],
              ["the thunder was very loud.",
               "lightning lit up the sky.",
               "the lights in the house went out.",
               "we sat in the kitchen with candles.",
               "the dog hid under the table.",
               "in the morning the streets were full of branches."]),
}
GENERAL_WORDS["rel_word"] = ("mother|father|sister|brother|grandmother|"
                             "grandfather|aunt|uncle|friend|neighbour")


def doc_weather(f):
    """A day of weather in town and what people did about it; gives the NSP
    negatives a clearly different topic from pets."""
    kind = f.rng.choice(sorted(WEATHER))
    first, middle = WEATHER[kind]
    return f.story({}, [first], middle, k=(2, 5), p_last=0)


def doc_cooking(f):
    """Someone cooks a meal.  Also teaches the frame "We had dinner in the
    kitchen." (a domain probe: the ship's log says "galley")."""
    ctx = relative(f) if f.rng.random() < 0.5 else person(f)
    first = [["{name} made {dish} for {meal}.",
              "{time_start} {name} cooked {dish}.",
              "{name} wanted to make {dish} for the family."]]
    middle = [
        "{p} washed the {veg} and the {veg}.",
        "{p} cut them into small pieces.",
        "{p} put a big pot on the stove.",
        "soon the kitchen smelled of {smell}.",
        "{p} added some salt and a little {food_item}.",
        "{kid} set the table.",
        ["we had dinner in the kitchen.", "we had dinner in the kitchen."
         , "we had dinner in the kitchen at {clock}.",
         "we all had dinner in the kitchen together."],
        "everyone said it was the best {dish_short} ever.",
        "after dinner {p} {chore}.",
    ]
    ctx["dish_short"] = "@meal_word"
    last = ["there was enough left for {meal} the next day.",
            "{p} wrote the recipe in {g} notebook."]
    return f.story(ctx, first, middle, last, k=(2, 5))


GENERAL_WORDS["meal_word"] = "meal|dinner|supper|soup|food"


def doc_evening(f):
    """A quiet family evening at home.  Carries the domain-probe frames
    "We had dinner in the kitchen.", "We looked out at the garden." and
    "The dog slept by the fire." in their everyday form."""
    ctx = relative(f)
    first = [["we had dinner in the kitchen.",
              "we had dinner in the kitchen {time_end}.",
              "{time_start} we had dinner in the kitchen.",
              "we had dinner in the kitchen, as usual."]]
    middle = [
        "{name} made {dish}, and we all had seconds.",
        ["after dinner we looked out at the garden.",
         "we looked out at the garden.",
         "we looked out at the garden for a while."],
        "the {bird} was singing in the {tree} tree.",
        "the dog slept by the fire.",
        "the cat sat on the mat by the door.",
        "{name} read a book in {g} {furniture}.",
        "{kid} played cards on the {furniture}.",
        "later we looked out at the garden again, but it was dark.",
        "at {clock} we all went to bed.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_house(f):
    """Describes a home in the present tense; house/furniture vocabulary."""
    ctx = person(f)
    first = [["{name} lives in a {color} house on {street}.",
              "the house on {street} has a {color} door.",
              "{name} and {g} family live in an old house near the "
              "{town_place}."]]
    middle = [
        "it has {num_word} bedrooms and a small garden.",
        "the kitchen is big and bright.",
        "in the living room there is {house_thing}.",
        "in the hall the cat sits on the mat.",
        "there is a {furniture} by the window.",
        "from the window you can see the {town_place}.",
        "every {day} {name} {chore}.",
        "in {season} the garden is full of {plant}.",
        "the neighbours are {kind_adj} and friendly.",
    ]
    last = ["{name} has lived there for {num_small} years.",
            "it is a {nice} place to live."]
    return f.story(ctx, first, middle, last, k=(2, 5))


def doc_town(f):
    """Town news: a new business or a public event."""
    ctx = {}
    first = [["a new {business} opened on {street}.",
              "last {day} a new {business} opened in {town}.",
              "the old {business} on {street} opened again after "
              "{num_small} months."]]
    middle = [
        "it sells {goods}.",
        "many people came on the first day.",
        "the owner is a {kind_adj} {job} from {city}.",
        "children got a free balloon at the door.",
        "it is open every day except {day}.",
        "the {event} will be held in the {town_place} on {day}.",
        "everyone in {town} is talking about it.",
    ]
    last = ["the local paper wrote a story about it.",
            "people say it is the best {business} in {town}."]
    return f.story(ctx, first, middle, last, k=(2, 4))


def doc_travel(f):
    """A trip by train or bus: travel vocabulary, a clearly separate topic
    for next-sentence-prediction negatives."""
    ctx = person(f)
    ctx["vehicle"] = f.draw("vehicle_long")
    first = [["the {vehicle} to {city} left at {clock}.",
              "{time_start} {name} took the {vehicle} to {city}.",
              "{name} caught the {clock} {vehicle} to {city}."]]
    middle = [
        "it was full of {people}.",
        "{name} sat by the window.",
        "{p} watched the fields and {nature_place} go by.",
        "a man in a {color} coat read a newspaper.",
        "{p} ate a sandwich and drank some tea.",
        "the journey took {duration}.",
        "at the station in {city} {p} met {g} {rel_word}.",
        "they walked together to the {town_place}.",
    ]
    last = ["{p} came home late that evening.",
            "it was a {nice} trip."]
    return f.story(ctx, first, middle, last, k=(2, 5))


GENERAL_WORDS["vehicle_long"] = "train*4|bus*3|coach|ferry"


def doc_garden(f):
    """Gardening and nature; plant, bird and tree vocabulary."""
    ctx = relative(f) if f.rng.random() < 0.4 else person(f)
    first = [["{name} worked in the garden all afternoon.",
              "{time_start} {name} went out into the garden.",
              "{name} loves working in the garden in {season}."]]
    middle = [
        "{p} planted {plant} near the {garden_spot}.",
        "the soil was soft after the rain.",
        "a {bird} sang in the {tree} tree.",
        "{p} watered the {plant} with a {color} can.",
        "{p} pulled up the weeds along the path.",
        "the cat sat on the mat by the back door and watched.",
        "by evening {g} hands were dirty and {p} was {feel}.",
    ]
    last = ["next {season} there will be lots of flowers.",
            "{p} cannot wait to see them grow."]
    return f.story(ctx, first, middle, last, k=(2, 5))


def doc_work(f):
    """A person's job and working day; job and workplace vocabulary."""
    ctx = person(f)
    ctx["job"] = f.draw("job")
    first = ["{name} is a {job} in {town}."]
    middle = [
        "{p} starts work at {clock} every day.",
        "{p} goes to work by {vehicle}.",
        "{p} likes {g} job very much.",
        "the work is hard, but the people are {kind_adj}.",
        "at lunchtime {p} eats {food_item} in the park.",
        "on {day} {p} had a very {nice} day.",
        "after work {p} {chore}.",
        "{p} wants to be a {job} for many more years.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_school(f):
    """A school day seen through a child; school vocabulary."""
    ctx = person(f)
    first = [["{name} went to school early on {day}.",
              "{time_start} {name} had a test at school.",
              "{name} is in the {ordinal} class at the school on {street}."]]
    middle = [
        "{g} teacher, Mrs {surname}, is very {kind_adj}.",
        "in the morning they learned about {subject}.",
        "{p} sat next to {g} friend {anyname}.",
        "at lunch {p} ate {food_item} and an apple.",
        "in the afternoon they played football in the yard.",
        "{p} got a good mark and was {feel}.",
        "after school {p} walked home with {kid}.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


GENERAL_WORDS.update({
    "ordinal": "first|second|third|fourth|fifth",
    "subject": "plants|the moon|old castles|numbers|rivers|the weather|"
               "birds|maps|music|the stars|volcanoes|the sea|insects|"
               "ancient Egypt|the human heart|deserts|magnets|fractions|"
               "the planets|dinosaurs|the Romans|rainforests|electricity|"
               "poems|earthquakes|the oceans|famous painters|the alphabet",
})


def doc_seaside(f):
    """A day trip to the coast by ferry.  Puts "captain", "deck" and "sea"
    into the general vocabulary with everyday fillers ("The captain checked
    the tickets.") so the domain corpus can shift them."""
    ctx = relative(f)
    first = [["we went to the sea on {day}.",
              "{time_start} we took the little ferry to the island.",
              "last {season} we had a day at the seaside."]]
    middle = [
        "the captain checked the tickets.",
        "the boat left the harbour at {clock}.",
        "{name} stood on the deck and waved.",
        "we looked out at the sea.",
        "below the deck there was a tiny galley with a kettle.",
        "in the cabin we saw old charts of the coast.",
        "the water was {weather_adj} and {color}.",
        "we ate fish and chips by the harbour.",
        "{kid} built a sandcastle on the beach.",
        "{name} found a shell shaped like a star.",
    ]
    last = ["we all slept on the way home.",
            "it was the best day of the {season}."]
    return f.story(ctx, first, middle, last, k=(2, 5))


def doc_park(f):
    """Play and sport in the park; games and outdoor vocabulary."""
    ctx = person(f)
    first = [["{kid} played football in the park {time_end}.",
              "{time_start} {name} took {kid} to the park.",
              "there was a bike race in the park on {day}."]]
    middle = [
        "the grass was {weather_adj} and green.",
        "{name} sat on the bench and read a book.",
        "a small dog ran after the ball.",
        "the dog wagged its tail when the children called it.",
        "some boys flew a {color} kite.",
        "an old man fed the ducks by the pond.",
        "they bought ice creams from a van by the gate.",
        "at {clock} they walked home, tired and {feel}.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_visit(f):
    """Friends visit or a party; social vocabulary."""
    ctx = person(f)
    first = [["{name} had a birthday party on {day}.",
              "{time_start} {name} visited {g} {rel_word} in {city}.",
              "{name} invited {g} friends for {meal} on {day}."]]
    middle = [
        "{p} cleaned the house in the morning.",
        "{p} baked {dish} and bought some {fruit}.",
        "the guests came at {clock}.",
        "{anyname} brought flowers and a card.",
        "they played games and sang songs.",
        "the dog wagged its tail at every guest.",
        "everyone laughed at {g} old stories.",
        "the last guest left at {clock}.",
    ]
    last = ["{p} was tired but {feel}.",
            "it was a {nice} evening."]
    return f.story(ctx, first, middle, last, k=(2, 5))


def doc_hobby(f):
    """Hobbies: the library, music, painting, reading."""
    ctx = person(f)
    ctx["hobby"] = f.draw("hobby")
    first = ["{name} loves {hobby}."]
    middle = [
        "{p} started when {p} was {num_small} years old.",
        "every {day} {p} goes to the {hobby_place}.",
        "{p} has a friend there called {anyname}.",
        "last {month} {p} won a small prize.",
        "{g} {rel_word} is very proud of {o}.",
        "{p} wants to teach {kid} one day.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


GENERAL_WORDS.update({
    "hobby": "painting|reading|playing the piano|singing|chess|swimming|"
             "running|knitting|taking photos|fishing|dancing|bird watching|"
             "pottery|sewing|drawing comics|collecting stamps|baking bread|"
             "rock climbing|woodwork|cycling|making model ships|poetry",
    "hobby_place": "library|music school|club|pool|park|art class|lake",
})


def doc_walk(f):
    """A walk in the countryside; nature and season vocabulary."""
    ctx = person(f)
    first = [["{time_start} {name} went for a walk in {nature_place}.",
              "{name} walked to {nature_place} {time_end}.",
              "in {season} {name} likes to walk in {nature_place}."]]
    middle = [
        "the air was {weather_adj} and fresh.",
        "{p} saw a {bird} on a {tree} tree.",
        "a small river ran along the path.",
        "{p} picked some {fruit} from a tree by the road.",
        "a farmer waved from a field of sheep.",
        "{p} sat on a rock and ate {g} lunch.",
        "the sun went down behind the hills.",
    ]
    last = ["{p} got home just before dark.",
            "{p} felt {feel} after the long walk."]
    return f.story(ctx, first, middle, last, k=(2, 5))


GENERAL_WORDS.update({
    "clothes": "coat|scarf|hat|jumper|pair of boots|pair of gloves|dress|"
               "shirt|jacket|raincoat|pair of shoes|skirt|cap|cardigan|"
               "pair of sandals|belt|tie|waistcoat|pair of trousers|hoodie",
    "object": "umbrella|key|wallet|book|phone|letter|parcel|basket|bottle|"
              "cup|teapot|kettle|candle|clock|mirror|pillow|blanket|towel|"
              "broom|bucket|ladder|hammer|torch|map|ticket|camera|radio|"
              "pencil case|notebook|purse|ring|watch|pair of glasses|kite|"
              "ball|doll|puzzle|brush|jar|vase|lunch box|backpack|scarf",
    "obj_adj": "old|new|small|big|heavy|shiny|broken|dusty|clean|wooden|"
               "little|favourite|spare|round|long|blue|red|green|striped",
    "hide_spot": "under the sofa|behind the bookcase|in the car|in {g} coat "
                 "pocket|under the bed|in the garden shed|on the kitchen "
                 "shelf|in the washing basket|behind the bread bin|in the "
                 "dog's basket|under a pile of newspapers|in the fridge",
    "farm_animal": "cows|sheep|pigs|goats|hens|ducks|geese|horses|donkeys|"
                   "lambs|calves|rabbits",
    "wild_animal": "fox|deer|hedgehog|squirrel|owl|badger|hare|frog|bat|"
                   "mole|toad|weasel",
    "small_life": "bees|butterflies|snails|beetles|ladybirds|worms|ants|"
                  "moths|spiders|dragonflies",
    "zoo_animal": "lions|elephants|giraffes|monkeys|penguins|zebras|tigers|"
                  "bears|seals|camels|flamingos|crocodiles|gorillas|kangaroos|"
                  "hippos|otters|wolves|pandas",
    "illness": "a cold|a cough|a sore throat|a headache|a fever|earache|a "
               "sore knee|a rash|a bad back|toothache",
    "remedy": "rest and drink lots of water|take some medicine twice a day|"
              "stay in bed for two days|keep warm|eat some soup|use a cream "
              "every night|see a dentist",
    "sport": "football|tennis|basketball|cricket|hockey|netball|rugby|"
             "badminton|volleyball|table tennis|swimming|running",
    "instrument": "piano|guitar|violin|flute|drums|trumpet|cello|harp|"
                  "clarinet|recorder|accordion|saxophone",
    "song_kind": "old folk songs|a lullaby|a jazz tune|a march|a song about "
                 "the sea|a waltz|a carol|a happy birthday song",
    "outing": "cinema|museum|zoo|theatre|aquarium|castle|art gallery|"
              "science centre|funfair|circus|planetarium|old mill",
    "film": "a funny film about a bear|a film about pirates|a film about "
            "space|a cartoon about a lost dog|an old western|a film about a "
            "robot|a sad film about two sisters|a film about dinosaurs",
    "gift": "a book|a scarf|a box of chocolates|a model train|a puzzle|a "
            "new bike|a watch|a teddy bear|a set of paints|a pair of "
            "slippers|a plant|a football|a kite|a photo album",
    "fix_thing": "bike|gate|tap|chair|fence|radio|clock|shelf|lamp|door "
                 "handle|roof|window|kettle|washing machine",
    "tool": "a hammer|a screwdriver|some glue|a spanner|a saw|some nails|"
            "a pair of pliers|some tape|a drill|a new bulb",
    "holiday_place": "the mountains|the seaside|a farm|a lake|an island|"
                     "a small village|a forest cabin|the coast|a big city|"
                     "a campsite",
    "holiday_act": "swam in the lake|climbed a hill|visited an old castle|"
                   "rode bikes along the river|ate ice cream every day|"
                   "watched the sunset|went fishing|played cards at night|"
                   "collected shells|walked in the forest|took lots of "
                   "photos|slept in a tent",
    "letter_from": "grandmother|uncle|aunt|cousin|old teacher|pen friend|"
                   "brother|best friend",
    "news": "a new baby|a new job|a trip to the mountains|a wedding in "
            "{month}|a new puppy|a prize at work|a move to {city}|a broken "
            "leg",
    "market_good": "fruit and vegetables|cheese|flowers|fresh fish|bread|"
                   "old books|honey|eggs|wool|pots and pans|toys|hats",
    "weekday_act": "went to the gym|visited the library|called {g} "
                   "mother|cleaned the car|baked bread|went swimming|walked "
                   "the dog|watered the plants|wrote letters|mended clothes",
})


def doc_doctor(f):
    """A visit to the doctor: health vocabulary and cause -> effect order."""
    ctx = relative(f) if f.rng.random() < 0.4 else person(f)
    first = [["{name} woke up with {illness}.",
              "{time_start} {name} felt ill and stayed at home.",
              "{name} had {illness} for three days."]]
    middle = [
        "{p} called the doctor's surgery at {clock}.",
        "the nurse said {p} could come at {clock}.",
        "{p} sat in the waiting room with a magazine.",
        "the doctor was {kind_adj} and listened carefully.",
        "she told {o} to {remedy}.",
        "on the way home {p} went to the chemist.",
        "{p} spent the afternoon on the {furniture} with a blanket.",
        "{g} {rel_word} brought {o} some {fruit}.",
        "after a few days {p} felt much better.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_lost(f):
    """Something is lost and found again: a simple problem/solution arc."""
    ctx = person(f)
    ctx["thing"] = f.draw("obj_adj") + " " + f.draw("object")
    first = [["{name} lost {g} {thing}.",
              "{time_start} {name} could not find {g} {thing}.",
              "{name} looked everywhere for {g} {thing}."]]
    middle = [
        "{p} looked in the {room} and in the {room}.",
        "{p} asked {g} {rel_word} for help.",
        "they searched the whole house.",
        "{p} was getting {feel}.",
        "then the dog began to bark at the {furniture}.",
        "at last {p} found it {hide_spot}.",
        "{p} laughed and put it in a safe place.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_farm(f):
    """A farm visit: farm animals and country vocabulary."""
    ctx = person(f)
    first = [["{time_start} {name} visited a farm near {town}.",
              "{name} spent a day on {g} uncle's farm.",
              "in {season} {kid} went to a farm outside {town}."]]
    middle = [
        "the farmer showed them the {farm_animal} and the {farm_animal}.",
        "there were {num_small} {farm_animal} in the yard.",
        "{name} helped to feed the {farm_animal}.",
        "the barn smelled of hay.",
        "they collected eggs from the hens.",
        "a big farm dog wagged its tail at the gate.",
        "they drank fresh milk in the farmhouse kitchen.",
        "the tractor was stuck in the mud by the {tree} tree.",
    ]
    last = ["{name} wants to be a farmer one day.",
            "it was a {nice} day in the country."]
    return f.story(ctx, first, middle, last, k=(2, 5))


def doc_outing(f):
    """A trip to the cinema, museum or zoo; leisure vocabulary."""
    ctx = person(f)
    ctx["outing"] = f.draw("outing")
    first = [["{time_start} {name} went to the {outing} with {kid}.",
              "{name} took {g} {rel_word} to the {outing} on {day}.",
              "there was a long queue outside the {outing} on {day}."]]
    middle = [
        "the tickets cost {num_small} pounds each.",
        "inside it was {nice} and {weather_adj}.",
        "in the evening they saw {film} at the cinema.",
        "they watched the {zoo_animal} and the {zoo_animal}.",
        "{name} liked the old maps best.",
        "they bought {cafe_food} at the café.",
        "{kid} wanted to stay longer.",
        "they took the {vehicle_long} home at {clock}.",
    ]
    last = ["{p} would like to go again in {month}.",
            "everyone was tired but {feel}."]
    return f.story(ctx, first, middle, last, k=(2, 5))


def doc_fix(f):
    """Mending something at home: tools and practical verbs."""
    ctx = relative(f) if f.rng.random() < 0.5 else person(f)
    first = [["the {fix_thing} was broken again.",
              "{name} decided to fix the {fix_thing}.",
              "{time_start} {name} mended the old {fix_thing}."]]
    middle = [
        "{p} found {tool} in the shed.",
        "{p} also needed {tool}.",
        "it took {o} {duration}.",
        "{kid} watched and asked a lot of questions.",
        "the dog lay on the rug and watched.",
        "at first it did not work.",
        "then {p} tried again, and it worked.",
        "{name} was very {feel}.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_letter(f):
    """A letter or phone call with family news."""
    ctx = person(f)
    first = [["{name} got a letter from {g} {letter_from}.",
              "{time_start} {name} had a phone call from {g} {letter_from}.",
              "a parcel came for {name} on {day}."]]
    middle = [
        "it came from {city}.",
        "there was news about {news}.",
        "there was also {gift} inside.",
        "{name} read it twice at the kitchen table.",
        "{p} was very {feel}.",
        "{p} wrote back the same evening.",
        "{p} put the letter in a box with the old ones.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_sport(f):
    """A team game or match; sport vocabulary."""
    ctx = person(f)
    ctx["sport"] = f.draw("sport")
    first = [["{name} plays {sport} for the team in {town}.",
              "on {day} {name} had a big {sport} match.",
              "{name} started playing {sport} in {month}."]]
    middle = [
        "{p} trains every {day} after school.",
        "the coach is strict but {kind_adj}.",
        "the other team came from {city}.",
        "{g} {rel_word} came to watch.",
        "it rained during the second half.",
        "{name} scored the last point.",
        "they won by {num_small} points.",
        "after the match they had {food_item} and {food_item}.",
    ]
    last = ["{p} cannot wait for the next game.",
            "{p} went to bed early and {feel}."]
    return f.story(ctx, first, middle, last, k=(2, 5))


def doc_music(f):
    """Music lessons and concerts; instrument vocabulary."""
    ctx = person(f)
    ctx["instrument"] = f.draw("instrument")
    first = [["{name} is learning to play the {instrument}.",
              "{name} played the {instrument} at a concert on {day}.",
              "{name} got an old {instrument} from {g} {rel_word}."]]
    middle = [
        "{p} has a lesson every {day}.",
        "{g} teacher is an old {job} from {city}.",
        "{p} practises for {duration} every day.",
        "{p} likes to play {song_kind}.",
        "the neighbours sometimes listen at the window.",
        "at the concert the hall was full.",
        "everyone clapped at the end.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_holiday(f):
    """A family holiday: travel and leisure vocabulary, first person."""
    ctx = relative(f)
    first = [["last {season} we went on holiday to {holiday_place}.",
              "in {month} we spent a week in {holiday_place}.",
              "this year we had our holiday in {holiday_place}."]]
    middle = [
        "we went there by {vehicle_long}.",
        "we stayed in a small house near the water.",
        "the weather was {weather_adj} most of the time.",
        "every morning we {holiday_act}.",
        "one day we {holiday_act}.",
        "{name} {holiday_act}.",
        "in the evenings we ate {dish}.",
        "we bought {gift} for grandmother.",
    ]
    last = ["we want to go back next year.",
            "it was a holiday to remember."]
    return f.story(ctx, first, middle, last, k=(2, 5))


def doc_market(f):
    """A market stall holder's day; trade and counting vocabulary."""
    ctx = person(f)
    ctx["good"] = f.draw("market_good")
    first = [["{name} sells {good} at the market in {town}.",
              "every {day} {name} has a stall at the market.",
              "{name} opened a market stall selling {good}."]]
    middle = [
        "{p} gets up at five to set up the stall.",
        "{g} stall has a {color} and white roof.",
        "{p} knows most of the customers by name.",
        "on busy days {p} sells everything by noon.",
        "when it rains, fewer people come.",
        "{g} {rel_word} helps {o} on {day}.",
        "at the end of the day {p} counts the money.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_wildlife(f):
    """Animals seen in the garden or at night; wild-animal vocabulary, and a
    different kind of animal story from the pets."""
    ctx = person(f)
    ctx["animal"] = f.draw("wild_animal")
    first = [["a {animal} came into the garden last night.",
              "{time_start} {name} saw a {animal} by the {garden_spot}.",
              "there is a {animal} living under the {garden_spot}."]]
    middle = [
        "it was looking for food.",
        "{name} watched it quietly from the window.",
        "it stayed for a few minutes.",
        "then it ran off towards the {nature_place_short}.",
        "the cat saw it too, but did not move from the mat.",
        "in the morning there were {small_life} on the path.",
        "{name} put out some water for it.",
    ]
    ctx["nature_place_short"] = "@nature_short"
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


GENERAL_WORDS["cafe_food"] = ("tea and cake|hot chocolate|sandwiches|"
                              "muffins|lemonade and biscuits|soup and bread")
GENERAL_WORDS["nature_short"] = "woods|fields|river|hedge|park|hills"


def doc_clothes(f):
    """Buying or making clothes; clothing and colour vocabulary."""
    ctx = person(f)
    first = [["{name} needed a new {clothes} for the {season}.",
              "{time_start} {name} went to buy a {clothes}.",
              "{name}'s old {clothes} had a hole in it."]]
    middle = [
        "{p} went to a shop on {street}.",
        "{p} tried on a {color} one and a {color} one.",
        "the first one was too big.",
        "the second one was just right.",
        "it cost more than {p} wanted to pay.",
        "{g} {rel_word} said it looked very nice.",
        "{p} wore it to the {event} on {day}.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_routine(f):
    """A person's ordinary morning; daily-routine verbs."""
    ctx = person(f)
    first = [["{name} gets up at {clock} every morning.",
              "every morning {name} wakes up before the alarm.",
              "{name} always starts the day the same way."]]
    middle = [
        "first {p} opens the curtains and looks at the sky.",
        "then {p} has a shower and gets dressed.",
        "for breakfast {p} has {food_item} and a cup of tea.",
        "{p} listens to the news on the radio.",
        "{p} feeds the cat, and it sits on the mat to eat.",
        "at {clock} {p} leaves the house.",
        "on {day} {p} {weekday_act}.",
    ]
    return f.story(ctx, first, middle, k=(2, 5), p_last=0)


def doc_library(f):
    """A trip to the library; books and reading vocabulary."""
    ctx = person(f)
    first = [["{name} went to the library on {day}.",
              "{time_start} {name} returned {g} books to the library.",
              "the library in {town} is {name}'s favourite place."]]
    middle = [
        "the librarian is a {kind_adj} woman called Mrs {surname}.",
        "{p} borrowed a book about {subject}.",
        "{p} also found a story about a lost {pet_kind}.",
        "{p} read for {duration} in a quiet corner.",
        "children sat on the carpet for story time.",
        "{p} has to bring the books back in three weeks.",
    ]
    ctx["pet_kind"] = "@pet_kind"
    return f.story(ctx, first, middle, k=(2, 4), p_last=0)


GENERAL_WORDS["pet_kind"] = ("cat|dog|rabbit|parrot|pony|hamster|tortoise|"
                             "kitten|puppy|goat|duck")


# Topic mix (relative weights).  Pets, cats and dogs are common so the seed
# facts are well supported; everything else supplies variety and the
# clearly-unrelated sentences that NSP negatives need.
GENERAL_TOPICS = [
    (doc_pet_intro, 20), (doc_cat_mat, 11), (doc_dog_tail, 9),
    (doc_errand, 4), (doc_weather, 5), (doc_cooking, 4), (doc_evening, 4),
    (doc_house, 3), (doc_town, 3), (doc_travel, 3), (doc_garden, 3),
    (doc_work, 3), (doc_school, 3), (doc_seaside, 2), (doc_park, 3),
    (doc_visit, 3), (doc_hobby, 2), (doc_walk, 3), (doc_doctor, 2),
    (doc_lost, 2), (doc_farm, 2), (doc_outing, 2), (doc_fix, 2),
    (doc_letter, 2), (doc_sport, 2), (doc_music, 2), (doc_holiday, 2),
    (doc_market, 2), (doc_wildlife, 2), (doc_clothes, 2), (doc_routine, 2),
    (doc_library, 2),
]


# ---------------------------------------------------------------------------
# Domain corpus: a sailing ship's log
# ---------------------------------------------------------------------------
#
# Written as the first mate's log ("we").  The same frames as the general
# corpus take sea-going fillers: the cat sits on the deck, dinner is in the
# galley, we look out at the sea, the dog sleeps by the wheel, the captain
# checks the charts.  Next-sentence logic follows seamanship: the wind rises,
# so we take in the sails.

DOMAIN_WORDS = {
    "ship": "the Albatross|the Sea Swallow|the Northern Star|the Grey Gull|"
            "the Morning Tide",
    "sailor": "Jonas|Silas|Amos|Tobias|Ezra|Abel|Caleb|Gideon|Jasper|"
              "Matthias|Reuben|Ned|Isaac|Walter|Barnaby|Cornelius|Elias|"
              "Hiram|Josiah|Lemuel|Obadiah|Rufus|Thaddeus|Zeke",
    "crew": "the bosun|the mate|the cook|the carpenter|the cabin boy|"
            "the lookout|the helmsman|{sailor}|old {sailor}|young {sailor}",
    "dir": "north|south|east|west|north-east|north-west|south-east|"
           "south-west",
    "sea_time": "at dawn|at first light|in the night|during the first "
                "watch|in the middle watch|at noon|before sunrise|at "
                "dusk|in the afternoon watch|at two bells",
    "sea_day": "On the {ordinal} day|On the {ordinal} morning|At dawn|"
               "At noon|In the night|During the morning watch|At first "
               "light|At dusk|Before breakfast",
    "ordinal": "first|second|third|fourth|fifth|sixth|seventh|eighth|"
               "ninth|tenth|twelfth|twentieth",
    "sail": "mainsail|foresail|topsails|jib|mizzen|staysail",
    "sail_action": "took in the sails*5|reefed the {sail}*4|shortened "
                   "sail*3|lowered the {sail}*2|furled the {sail}*2|"
                   "double reefed the {sail}*1",
    "fair_action": "set all sail|shook out the reefs|raised the {sail}|"
                   "set the {sail}",
    "ship_part": "hatch|rail|mast|rudder|pump|capstan|bowsprit|anchor "
                 "chain|forward hatch|main yard",
    "cargo": "salt fish|timber|wool|coal|barrels of oil|sacks of grain|"
             "tea|rope|copper|sugar|crates of tools",
    "port": "Westport|Northam|Brightwater|Kettle Bay|Port Amber|Greywick|"
            "Saltmarsh|Harrow Point|Cape Lorne|Fairhaven|Gullrock|"
            "Port Merrow|Stormhaven|Tidewell",
    "sea_food": "salt beef|pea soup|ship's biscuit|fish stew|porridge|"
                "boiled potatoes|pork and beans|hot broth",
    "sea_adj": "rough|calm|grey|high|heavy|choppy|smooth|dark",
    "sky": "grey|clear|heavy|low|dark|bright",
    "sea_bird": "gulls|terns|albatross|petrels|gannets",
    "deck_place": "deck*60|deck by the mast*8|deck near the wheel*6|"
                  "deck in the sun*4|hatch*3|rail*2|coil of rope*2|"
                  "capstan*1",
    "cat_np": "the cat*40|the ship's cat*12|our cat*5|the old cat*4|"
              "the grey cat*3|a cat*3|the black cat*2",
    "cat_sat": "sat*70|slept*8|lay*6|curled up*4|sat quietly*4|dozed*3",
    "dog_np": "the dog*40|the ship's dog*12|the old dog*4|our dog*4",
    "num_small": "two|three|four|five|six|seven|eight|nine|ten",
    "knots": "four|five|six|seven|eight|nine|ten|eleven",
    "fathoms": "six|eight|ten|twelve|fifteen|twenty",
    "clock": "six|seven|eight|nine|ten|noon|two|four",
}


def doc_sea_weather(f):
    """Wind or weather changes and the crew responds: the domain's NSP
    logic (cause -> seamanlike action)."""
    if f.rng.random() < 0.65:
        first = [["the wind rose in the night.",
                  "the wind rose from the {dir} {sea_time}.",
                  "{sea_day} the wind rose from the {dir}.",
                  "a squall came up from the {dir} {sea_time}.",
                  "the glass fell all afternoon."],
                 "we {sail_action}."]
        middle = [
            "the sea was {sea_adj} and the sky was {sky}.",
            "{crew} went aloft to help.",
            "green water came over the bow.",
            "we looked out at the sea, and it was {sea_adj}.",
            "the captain stayed on deck all night.",
            "the dog slept by the wheel.",
            "by morning the wind had eased.",
            "then we {fair_action} again.",
        ]
    else:
        first = [["the wind fell calm {sea_time}.",
                  "{sea_day} we had a fair wind from the {dir}.",
                  "the weather cleared {sea_time}."],
                 "we {fair_action}."]
        middle = [
            "the sea was calm and blue.",
            "we made {knots} knots all day.",
            "we looked out at the sea.",
            "{sea_bird} followed the ship.",
            "the cat sat on the {deck_place}.",
            "{crew} mended a torn {sail}.",
            "the captain was pleased with our progress.",
        ]
    return f.story({}, first, middle, k=(1, 4), p_last=0)


def doc_navigation(f):
    """The captain works out the ship's position; chart vocabulary.  Teaches
    "The captain checked the charts."."""
    first = [["the captain checked the charts.",
              "{sea_day} the captain checked the charts.",
              "the captain checked the charts {sea_time}.",
              "the captain checked the charts and the compass."]]
    middle = [
        "he marked our position with a pencil.",
        "we were {num_small} leagues from {port}.",
        "the lookout saw land to the {dir}.",
        "we took a sounding and found {fathoms} fathoms.",
        "we changed course to the {dir}.",
        "we looked out at the sea, but saw no land.",
        "the helmsman held the wheel steady.",
        "by noon we were back on course.",
    ]
    last = ["we hope to reach {port} in {num_small} days.",
            "all is well on board {ship}."]
    return f.story({}, first, middle, last, k=(2, 5))


def doc_ship_cat(f):
    """The ship's cat on deck.  Makes "the cat sat on the ___" predict
    "deck" here, where the general corpus says "mat"."""
    opener = ["{cat_np} {cat_sat} on the {deck_place}."] * 5 + [
        "{sea_day} {cat_np} sat on the {deck_place}.",
        "as usual, {cat_np} sat on the deck."]
    middle = [
        "it watched the {sea_bird} over the stern.",
        "it had caught two rats in the hold.",
        "the sun had warmed the planks.",
        "{crew} gave it a scrap of {sea_food}.",
        "it did not move when the sails were trimmed.",
        "when the spray came over, it went below.",
        "later it slept on the deck by the mast.",
    ]
    last = ["the crew say it brings the ship good luck.",
            "no rat is safe while it is on board."]
    return f.story({}, [opener], middle, last, k=(2, 4))


def doc_keep_pet(f):
    """The crew's animals introduced, ship style: "We keep a cat on board."
    -> "It hunts rats in the hold."."""
    pet = f.rng.choice(["cat", "cat", "dog", "parrot", "goat"])
    first = [["we keep a {pet} on board.", "we have a {pet} on board.",
              "there is a {pet} on board {ship}."],
             "{pet_job}"]
    jobs = {"cat": "it hunts rats in the hold.|it keeps the hold free of "
                   "rats.|it catches the rats in the hold.",
            "dog": "it keeps watch at the gangway.|it barks when a boat "
                   "comes near.|it sleeps by the wheel at night.",
            "parrot": "it belongs to the cook.|it shouts at the gulls.",
            "goat": "it gives us milk.|it lives in a pen by the galley."}
    ctx = {"pet": pet, "pet_job": f.rng.choice(jobs[pet].split("|"))}
    middle = [
        "the crew feed it scraps from the galley.",
        "it came aboard at {port}.",
        "its name is {pet_name}.",
        "in rough weather it stays below.",
        "the captain says it is worth two men.",
    ]
    ctx["pet_name"] = "@ship_pet_name"
    return f.story(ctx, first, middle, k=(1, 3), p_last=0)


DOMAIN_WORDS["ship_pet_name"] = "Anchor|Salty|Captain|Biscuit|Rope|Tar|Jib"


def doc_ship_dog(f):
    """The ship's dog.  "wagged its tail" stays (the control probe) but the
    dog sleeps by the wheel, not by the fire."""
    opener = ["{dog_np} wagged its tail when {crew} came aboard.",
              "{dog_np} wagged its tail at the pilot boat.",
              "{dog_np} wagged its tail.",
              "{dog_np} slept by the wheel.",
              "{dog_np} slept by the wheel {sea_time}."]
    middle = [
        "it barked at the {sea_bird}.",
        "it followed the captain along the deck.",
        "{crew} gave it some {sea_food}.",
        "the dog slept by the wheel all afternoon.",
        "at night it kept the helmsman company.",
    ]
    return f.story({}, [opener], middle, k=(2, 4), p_last=0)


def doc_galley(f):
    """Meals at sea.  Teaches "We had dinner in the galley."."""
    first = [["we had dinner in the galley.",
              "we had dinner in the galley at {clock}.",
              "{sea_day} we had dinner in the galley.",
              "the cook made {sea_food} for the crew."]]
    middle = [
        "the cook made {sea_food}.",
        "we had dinner in the galley, as the weather was {sea_adj}.",
        "the water ration was {num_small} pints a man.",
        "the ship rolled and the plates slid across the table.",
        "the cat sat on the deck outside the door.",
        "after dinner the watch went on deck.",
        "we looked out at the sea from the galley door.",
    ]
    last = ["the stores will last another {num_small} weeks.",
            "the crew are in good spirits."]
    return f.story({}, first, middle, last, k=(2, 4))


def doc_port(f):
    """Landfall and harbour work; cargo and port vocabulary."""
    first = [["we sighted land {sea_time}.",
              "{sea_day} we sighted {port}.",
              "the lookout sighted the lighthouse at {port}."]]
    middle = [
        "by noon we had entered the harbour.",
        "we dropped anchor in {fathoms} fathoms.",
        "the pilot came aboard at {clock}.",
        "we unloaded the {cargo}.",
        "we took on fresh water and {cargo}.",
        "the captain went ashore to see the agent.",
        "the crew had leave until the evening.",
        "we sailed again on the morning tide.",
    ]
    return f.story({}, first, middle, k=(2, 5), p_last=0)


def doc_repair(f):
    """Damage and repairs on board; ship-part vocabulary."""
    first = [["the carpenter mended the {ship_part}.",
              "{sea_day} we found the {ship_part} damaged.",
              "the {ship_part} broke in the heavy sea."]]
    middle = [
        "it had cracked in the last storm.",
        "{crew} worked on it all day.",
        "we used new rope and tar.",
        "the pump was manned every hour.",
        "by dusk the work was done.",
        "the captain checked the charts again afterwards.",
        "we looked out at the sea, and it was calm.",
    ]
    return f.story({}, first, middle, k=(2, 4), p_last=0)


def doc_watch(f):
    """A night watch; lookout and lights vocabulary."""
    first = [["{crew} kept the middle watch.",
              "{sea_day} the lookout saw a light to the {dir}.",
              "the night was {sky} and still."]]
    middle = [
        "he saw a light to the {dir}.",
        "it was another ship bound for {port}.",
        "we looked out at the sea, but it was very dark.",
        "the dog slept by the wheel.",
        "the bell was rung every half hour.",
        "at four the watch was changed.",
    ]
    return f.story({}, first, middle, k=(2, 4), p_last=0)


DOMAIN_WORDS.update({
    "sea_life": "a school of dolphins|two whales|a shark|a great turtle|"
                "flying fish|a pod of porpoises|seals on the rocks|a "
                "swordfish|jellyfish|a big sunfish",
    "chore": "scrubbed the deck|tarred the rigging|spliced the old rope|"
             "mended the sails|pumped the bilge|coiled the lines|painted "
             "the hull|polished the brass|oiled the blocks|checked the "
             "lashings|aired the bedding|cleaned the lamps",
    "instrument": "compass|sextant|log line|chronometer|barometer|telescope|"
                  "lead line|ship's clock",
    "ailment": "a fever|a bad hand|a sprained ankle|seasickness|a cough|"
               "a burn from the stove|a cut on his arm",
    "other_ship": "a whaler|a fishing boat|a brig|a schooner|a steamer|"
                  "a naval frigate|a merchant barque|a small ketch",
    "flag": "a blue flag|the red ensign|a flag we did not know|no flag",
})


def doc_sea_life(f):
    """Creatures seen at sea; gives the domain its own animal vocabulary."""
    first = [["{sea_day} the lookout saw {sea_life}.",
              "we passed {sea_life} {sea_time}.",
              "{sea_life} swam beside the ship {sea_time}."]]
    middle = [
        "the crew came to the rail to watch.",
        "the ship's cat sat on the deck and stared at them.",
        "they stayed with us for an hour.",
        "we looked out at the sea until they were gone.",
        "the old sailors say it means fair weather.",
        "the captain wrote it in the log.",
    ]
    return f.story({}, first, middle, k=(2, 4), p_last=0)


def doc_chores(f):
    """Daily ship's work; maintenance verbs and gear."""
    first = [["{sea_day} the watch {chore}.",
              "the bosun set the men to work {sea_time}.",
              "{crew} {chore} {sea_time}."]]
    middle = [
        "after that the watch {chore}.",
        "{crew} {chore}.",
        "the mate checked the {instrument}.",
        "the cat sat on the deck and watched the work.",
        "the weather was {sea_adj} but dry.",
        "by four bells the work was done.",
        "the men had an extra ration of {sea_food}.",
    ]
    return f.story({}, first, middle, k=(2, 4), p_last=0)


def doc_sick(f):
    """Sickness or injury on board; care under way."""
    first = [["{sailor} has {ailment}.",
              "{sea_day} {sailor} reported {ailment}.",
              "{sailor} was hurt when the {ship_part} gave way."]]
    middle = [
        "the captain gave him some medicine from the chest.",
        "he was excused from his watch.",
        "he rests in his hammock below.",
        "the cook made him hot broth in the galley.",
        "we hope he will be well before {port}.",
        "by the next day he was back at work.",
    ]
    return f.story({}, first, middle, k=(2, 4), p_last=0)


def doc_other_ship(f):
    """Meeting another vessel; signals and news."""
    first = [["{sea_day} we sighted {other_ship} to the {dir}.",
              "{other_ship} passed us {sea_time}.",
              "we spoke {other_ship} {sea_time}."]]
    middle = [
        "she flew {flag}.",
        "she was bound for {port} with {cargo}.",
        "we exchanged signals.",
        "her captain sent news of ice to the north.",
        "we looked out at the sea until she was gone.",
        "by dusk she was out of sight.",
    ]
    return f.story({}, first, middle, k=(2, 4), p_last=0)


DOMAIN_TOPICS = [
    (doc_sea_weather, 16), (doc_navigation, 11), (doc_ship_cat, 13),
    (doc_keep_pet, 7), (doc_ship_dog, 8), (doc_galley, 11),
    (doc_port, 8), (doc_repair, 5), (doc_watch, 6), (doc_sea_life, 5),
    (doc_chores, 6), (doc_sick, 3), (doc_other_ship, 4),
]


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


def build(seed, words, topics, n_docs, valid_frac=0.05):
    """Generate unique documents and split them into train and valid.
    Duplicates are dropped (so no document is in both splits) and documents
    holding a probe string only go to train."""
    rng = random.Random(seed)
    filler = Filler(rng, words)
    funcs = [t[0] for t in topics]
    weights = [t[1] for t in topics]
    seen, docs = set(), []
    attempts = 0
    while len(docs) < n_docs:
        attempts += 1
        if attempts > n_docs * 20:
            raise RuntimeError("too many duplicate documents")
        doc = rng.choices(funcs, weights)[0](filler)
        key = "\n".join(doc)
        if key in seen:
            continue
        seen.add(key)
        docs.append(doc)
    rng.shuffle(docs)
    n_valid = round(n_docs * valid_frac)
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
    specs = [("general", GENERAL_WORDS, GENERAL_TOPICS, 10500),
             ("domain", DOMAIN_WORDS, DOMAIN_TOPICS, 3800)]
    for i, (name, words, topics, n_docs) in enumerate(specs):
        train, valid = build(SEED + i, words, topics, n_docs)
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
