"""Word lists and plot templates for the story generator (pure data, no logic).

Templates are single sentences with `{slot}` or `{slot:form}` placeholders. A slot is filled
the first time it is rendered and keeps its word for the rest of the story. Slot names follow
one convention (resolved in `stories.py`):

- `hero`, `friend` draw from NAMES (never the same child twice); `grown` from ADULTS;
  forms: "" (the name), he, He, him, his, His, was (was/were), kid (girl/boy/kid);
- `<category>` (e.g. `toy`) draws a noun of NOUNS[category]; `<category>2` is a second,
  different noun of the same category; forms: "" (noun), a ("a ball", "an owl");
- `<category>_adj` / `<category>2_adj` draws an adjective phrase that fits the category;
  forms: "" ("shiny red"), a ("a shiny red");
- `<verb class>` (e.g. `move`), `<verb class>2`, `<verb class>3` draw different verbs of
  VERBS[class]; forms: "" (past tense), base.

Rules that keep every story uniquely decodable (tested): no word is both a name, a noun, a
verb form or an adjective; words are single tokens (hyphens allowed, no spaces); alternatives and optional sentences never share
their literal text; a closing quote ending in . ! or ? is followed by a lowercase word unless
it ends the sentence (see `split_sentences`). For fast parsing, a name slot is first mentioned
by the name itself, not by a pronoun.
"""

from __future__ import annotations

from typing import NamedTuple


class Category(NamedTuple):
    """Nouns that share their fitting adjectives: every quality (x every color) fits every noun."""

    nouns: tuple[str, ...]
    qualities: tuple[str, ...]
    colors: tuple[str, ...] = ()


class Maybe(NamedTuple):
    """A step that is present with probability `p`."""

    step: object
    p: float = 0.5


class OneOf(tuple):
    """Alternative steps, one chosen uniformly."""

    def __new__(cls, *options: object) -> OneOf:
        return super().__new__(cls, options)


PRONOUNS = {
    "she": {"he": "she", "He": "She", "him": "her", "his": "her", "His": "Her", "was": "was", "kid": "girl"},
    "he": {"he": "he", "He": "He", "him": "him", "his": "his", "His": "His", "was": "was", "kid": "boy"},
    "they": {"he": "they", "He": "They", "him": "them", "his": "their", "His": "Their", "was": "were", "kid": "kid"},
}

NAMES = {
    "she": """Lily Emma Mia Sophie Anna Ella Lucy Zoe Chloe Ava Olivia Isla Amelia Emily Hannah Sarah
        Molly Polly Katie Amy Nora Clara Alice Ellie Maya Nina Tina Rosa Rosie Leah Julia Laura Anya
        Jenny Jane Susie Sally Betty Dora Greta Heidi Ingrid Kira Lena Lola Luna Mabel Matilda Millie
        Nellie Olga Paula Priya Rita Ruth Stella Tessa Uma Vera Wendy Xena Yara Zara Abby Bella Carla
        Diana Elsa Fiona Gemma Hattie Irene Jill Kylie Lottie Maddie Naomi Pippa Rachel Sadie Tara Una
        Vicky Willa Yasmin Zelda Aria Bonnie Cora Daphne Edith Freya Gwen Harriet Ida Josie Lydia
        Martha Nadia Odette Petra Rhea Selma Thea Ursula Vivian Winnie Yvonne Agnes Beth Celia Delia
        Elena Flora Gina Hilda Ines Kayla Lara Mara Nell Orla Phoebe Sienna Tilly Valerie Wanda Alma
        Bea Cleo Dina Esme Gloria Helen Isabel Keira Leona Mina Noelle Pia Rena Sofia Talia Yuki Ada
        Bianca Eva Gabby Hana Ivana Lisa Mandy Nancy Peggy Ramona Sonia Trudy Vanessa Zuri""".split(),
    "he": """Tom Ben Max Leo Jack Finn Noah Liam Oscar Theo Hugo Felix Jake Luke Owen Ryan Adam Eli
        Ethan Henry Oliver Jacob Daniel David Peter Paul Simon Tim Timmy Toby Billy Bobby Danny Eddie
        Freddie George Harry Isaac Jasper Kevin Louis Milo Ned Otto Percy Ralph Rory Seth Victor Walter
        Xavier Zach Aaron Arthur Barney Caleb Dexter Dylan Edgar Elliot Ezra Frank Gus Hank Ian Ivan
        Jonah Kai Kyle Lenny Marco Mason Nate Neil Omar Pablo Quentin Rex Ricky Ronan Rufus Sean Stan
        Ted Tyler Umar Vince Wade Wesley Yusuf Zane Abel Alfie Archie Boris Bruno Carl Colin Cyrus
        Dean Dennis Derek Dominic Emil Enzo Erik Evan Fred Gabe Gary Glen Greg Harvey Hector Igor Joel
        Jude Karl Kenny Lars Leon Lewis Louie Malik Miles Mario Nils Oren Otis Pedro Pete Raj Reggie
        Rico Roy Ruben Sid Sonny Stefan Tomas Ugo Wally Yuri Zeke Amir Andy Benny Cody Dante Dev Eric
        Felipe Hamid Ira Jonas Kofi Lucas Marcus Mateo Nico Olly Ravi Sami Tariq Vito Wyatt""".split(),
    "they": """Alex Sam Riley Casey Jordan Morgan Taylor Jamie Quinn Avery Charlie Ellis Frankie Harley
        Jesse Kendall Logan Parker Reese Rowan Sasha Skyler Devon Emery Finley Hayden Jody Lee Peyton
        Shay Ash Kim Remy Dani""".split(),
}

ADULTS = {"Mom": "she", "Dad": "he", "Grandma": "she", "Grandpa": "he"}

_TOY_COLORS = ("red", "blue", "green", "yellow", "purple", "pink", "white", "silver")

NOUNS = {
    "toy": Category(
        ("ball", "kite", "doll", "robot", "puzzle", "yo-yo", "marble", "puppet", "pinwheel", "rocket",
         "dinosaur", "airplane", "spaceship", "balloon", "hoop", "racecar", "dollhouse", "slinky",
         "kaleidoscope", "rattle"),
        ("shiny", "new", "old", "little", "big", "tiny", "pretty", "special", "fancy", "funny"),
        _TOY_COLORS),
    "pet": Category(
        ("puppy", "kitten", "dog", "cat", "bunny", "rabbit", "hamster", "gerbil", "ferret",
         "chinchilla", "mouse", "pony", "poodle", "beagle", "kitty"),
        ("fluffy", "playful", "sleepy", "little", "tiny", "friendly", "gentle", "cuddly", "silly", "sweet"),
        ("brown", "white", "gray", "black", "golden")),
    "farm": Category(
        ("cow", "pig", "goat", "sheep", "horse", "donkey", "chicken", "hen", "rooster", "goose",
         "turkey", "calf", "llama", "ox", "piglet", "duck", "lamb", "alpaca"),
        ("big", "friendly", "old", "gentle", "happy", "noisy", "hungry", "lazy", "little", "young")),
    "wild": Category(
        ("bear", "wolf", "fox", "deer", "moose", "badger", "raccoon", "skunk", "squirrel", "chipmunk",
         "beaver", "otter", "hedgehog", "porcupine", "bat", "lion", "tiger", "elephant", "giraffe",
         "zebra", "monkey", "gorilla", "hippo", "rhino", "kangaroo", "koala", "panda", "camel",
         "crocodile", "alligator", "lizard", "snake", "weasel"),
        ("big", "wild", "shy", "old", "sleepy", "hungry", "quiet", "grumpy", "strange", "huge")),
    "bird": Category(
        ("owl", "parrot", "robin", "sparrow", "swan", "crow", "pigeon", "eagle", "hawk", "penguin",
         "peacock", "flamingo", "seagull", "pelican", "woodpecker", "bluebird", "hummingbird",
         "blackbird", "canary", "finch", "heron", "stork", "toucan"),
        ("little", "tiny", "noisy", "sleepy", "happy", "busy", "clever", "proud", "hungry", "young", "pretty")),
    "bug": Category(
        ("ant", "bee", "beetle", "butterfly", "caterpillar", "ladybug", "snail", "spider", "worm",
         "cricket", "grasshopper", "firefly", "dragonfly", "moth", "bumblebee"),
        ("tiny", "little", "busy", "happy", "sleepy", "friendly", "clever", "curious", "shy")),
    "sea": Category(
        ("fish", "turtle", "crab", "starfish", "shrimp", "octopus", "seahorse", "clam", "minnow",
         "lobster", "eel", "guppy", "squid", "tadpole"),
        ("little", "tiny", "shiny", "friendly", "playful", "curious", "happy", "slippery")),
    "nature": Category(
        ("beach", "forest", "lake", "hill", "meadow", "river", "pond", "mountain", "valley", "field",
         "island", "jungle", "waterfall", "orchard", "riverbank", "seaside", "prairie", "creek",
         "grove", "marsh", "canyon", "bay"),
        ("sunny", "green", "quiet", "peaceful", "pretty", "big", "faraway", "lovely", "wild", "misty")),
    "town": Category(
        ("park", "zoo", "library", "market", "museum", "bakery", "circus", "fair", "aquarium", "castle",
         "playground", "school", "toyshop", "bookshop", "harbor", "station", "theater", "carnival",
         "village", "stadium"),
        ("busy", "big", "little", "old", "famous", "crowded", "noisy", "colorful", "cheerful", "fancy")),
    "fruit": Category(
        ("apple", "pear", "peach", "plum", "banana", "mango", "cherry", "melon", "watermelon", "kiwi",
         "apricot", "strawberry", "pineapple", "papaya", "nectarine", "tangerine", "fig"),
        ("juicy", "ripe", "sweet", "fresh", "big", "little", "plump", "yummy")),
    "baked": Category(
        ("cookie", "cake", "cupcake", "muffin", "pie", "sandwich", "pancake", "waffle", "bun",
         "biscuit", "pretzel", "donut", "brownie", "tart", "bagel", "pizza", "scone", "croissant"),
        ("warm", "sweet", "yummy", "fresh", "big", "little", "soft", "tasty", "delicious")),
    "plant": Category(
        ("sunflower", "tulip", "daisy", "poppy", "marigold", "pumpkin", "tomato", "carrot", "beanstalk",
         "cabbage", "potato", "cucumber", "radish", "pansy", "bluebell", "dandelion", "zucchini",
         "squash", "lettuce", "pepper"),
        ("tall", "tiny", "green", "bright", "pretty", "strong", "healthy", "big", "lovely", "giant")),
    "ride": Category(
        ("car", "truck", "van", "bus", "train", "jeep", "camper", "boat", "ferry", "wagon", "tram",
         "trolley", "sailboat", "rowboat", "canoe", "minivan"),
        ("shiny", "new", "old", "little", "big", "noisy", "fast", "sturdy"),
        ("red", "blue", "green", "yellow", "white", "black", "silver")),
    "cloth": Category(
        ("hat", "scarf", "coat", "sweater", "jacket", "mitten", "glove", "sock", "boot", "dress",
         "shirt", "cap", "hoodie", "vest", "cape", "apron", "skirt", "raincoat", "poncho", "bonnet"),
        ("warm", "soft", "new", "cozy", "old", "fuzzy", "little", "pretty", "woolly"),
        ("red", "blue", "green", "yellow", "purple", "pink", "white", "gray", "brown")),
    "dish": Category(
        ("vase", "bowl", "plate", "cup", "mug", "teapot", "jar", "lamp", "mirror", "clock", "dish",
         "pitcher", "teacup", "jug", "saucer", "figurine", "candlestick"),
        ("pretty", "old", "fancy", "special", "shiny", "little", "lovely", "delicate"),
        ("blue", "white", "green", "yellow", "pink")),
    "furn": Category(
        ("bed", "couch", "sofa", "table", "chair", "desk", "shelf", "rug", "cupboard", "closet",
         "wardrobe", "dresser", "stool", "cushion", "bench", "bookcase"),
        ("big", "old", "little", "dusty", "heavy")),
    "outspot": Category(
        ("bush", "tree", "rock", "log", "stump", "fence", "hedge", "shed", "gate", "wall", "haystack",
         "mailbox", "boulder", "woodpile"),
        ("big", "old", "little", "tall")),
    "haul": Category(
        ("basket", "bucket", "bag", "sack", "crate", "backpack", "suitcase", "tray", "box", "parcel",
         "package", "barrel", "trunk", "bundle"),
        ("heavy", "big", "huge", "full", "bulky"),
        ("red", "blue", "green", "brown", "yellow")),
    "gift": Category(
        ("necklace", "bracelet", "ribbon", "crown", "locket", "compass", "telescope", "paintbox",
         "sketchbook", "journal", "wand", "tiara", "storybook", "brooch", "medal", "trophy", "pendant",
         "badge", "keychain"),
        ("shiny", "pretty", "special", "lovely", "tiny", "new", "fancy", "beautiful", "sparkly"),
        ("red", "blue", "green", "purple", "pink", "golden", "silver")),
    "struct": Category(
        ("tower", "fort", "sandcastle", "birdhouse", "treehouse", "doghouse", "bridge", "raft", "hut",
         "igloo", "snowman", "playhouse", "dam", "tent", "den", "ramp", "cabin", "clubhouse"),
        ("tall", "big", "strong", "little", "sturdy", "grand", "wonderful", "fine")),
    "instr": Category(
        ("drum", "flute", "piano", "violin", "guitar", "trumpet", "harmonica", "tambourine",
         "xylophone", "recorder", "banjo", "harp", "cello", "horn", "clarinet", "trombone"),
        ("shiny", "old", "new", "little", "big", "fancy", "lovely"),
        ("red", "blue", "black", "white", "golden", "silver")),
}


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """'run/ran hop/hopped' -> (("run", "ran"), ("hop", "hopped")): (base, past tense) pairs."""
    return tuple(tuple(item.split("/")) for item in text.split())  # type: ignore[misc]


VERBS = {
    "move": _pairs("""run/ran walk/walked skip/skipped hop/hopped dash/dashed march/marched
        wander/wandered stroll/strolled tiptoe/tiptoed jog/jogged hurry/hurried rush/rushed zoom/zoomed
        gallop/galloped scamper/scampered stomp/stomped race/raced trot/trotted waddle/waddled
        scurry/scurried sprint/sprinted trudge/trudged bounce/bounced leap/leapt stride/strode
        zip/zipped shuffle/shuffled plod/plodded"""),
    "fun": _pairs("""play/played laugh/laughed sing/sang dance/danced giggle/giggled chat/chatted
        cheer/cheered clap/clapped hum/hummed whistle/whistled twirl/twirled spin/spun swing/swung
        draw/drew jump/jumped tumble/tumbled wiggle/wiggled splash/splashed romp/romped joke/joked
        frolic/frolicked explore/explored pretend/pretended read/read doodle/doodled paint/painted"""),
    "handle": _pairs("""hug/hugged hold/held carry/carried clean/cleaned wipe/wiped polish/polished
        dust/dusted pat/patted squeeze/squeezed cradle/cradled kiss/kissed grab/grabbed lift/lifted
        guard/guarded admire/admired inspect/inspected touch/touched shake/shook tap/tapped"""),
    "search": _pairs("""look/looked peek/peeked search/searched check/checked peer/peered
        glance/glanced hunt/hunted poke/poked rummage/rummaged snoop/snooped"""),
    "care": _pairs("""feed/fed pet/petted brush/brushed wash/washed bathe/bathed comb/combed
        stroke/stroked cuddle/cuddled groom/groomed tickle/tickled snuggle/snuggled"""),
    "cook": _pairs("""mix/mixed stir/stirred whisk/whisked pour/poured slice/sliced chop/chopped
        knead/kneaded sift/sifted measure/measured sprinkle/sprinkled frost/frosted roll/rolled
        blend/blended"""),
    "build": _pairs("""hammer/hammered saw/sawed glue/glued stack/stacked tape/taped tie/tied
        nail/nailed sand/sanded carve/carved pile/piled prop/propped fix/fixed mend/mended
        tinker/tinkered fasten/fastened twist/twisted bolt/bolted drill/drilled lash/lashed"""),
    "garden": _pairs("""water/watered weed/weeded rake/raked tend/tended hoe/hoed mulch/mulched
        trim/trimmed prune/pruned dig/dug fertilize/fertilized till/tilled"""),
    "happy": _pairs("smile/smiled grin/grinned beam/beamed wink/winked nod/nodded chuckle/chuckled"),
    "sad": _pairs("""sigh/sighed frown/frowned sniffle/sniffled sob/sobbed pout/pouted
        whimper/whimpered mope/moped sulk/sulked groan/groaned weep/wept"""),
    "exclaim": _pairs("""shout/shouted yell/yelled call/called exclaim/exclaimed squeal/squealed
        holler/hollered cry/cried announce/announced gasp/gasped shriek/shrieked"""),
    "reply": _pairs("""say/said reply/replied answer/answered whisper/whispered mumble/mumbled
        murmur/murmured explain/explained"""),
}

OPENERS = OneOf(
    "Once upon a time, {hero} lived in a little house near the {nature}.",
    "{hero} was a little {hero:kid} who loved to {fun:base}.",
)


def moral(lesson: str) -> OneOf:
    """Every story closes with its plot's lesson, told one of two ways."""
    return OneOf(f"The moral of the story is that {lesson}.", f"And so, {{hero}} learned that {lesson}.")


# Each plot is a sequence of steps: a template string, Maybe(step, p) or OneOf(step, ...).
PLOTS = {
    "lost_and_found": (
        OPENERS,
        "{hero:His} favorite toy was {toy_adj:a} {toy}.",
        "Every day, {hero:he} {handle} the {toy} and took it everywhere.",
        "One morning, the {toy} was gone!",
        Maybe("{hero:He} {sad} and looked all around the room."),
        '{hero} {exclaim}, "Where is my {toy}?"',
        "{hero:He} {search} under the {furn_adj} {furn}, but it was not there.",
        Maybe("{hero:He} {search2} behind the {furn2}, but it was not there either."),
        "Then {hero:his} friend {friend} came over to play.",
        '"I will help you look," {reply} {friend}.',
        "At last, {friend} found the {toy} behind {outspot_adj:a} {outspot} in the yard.",
        '{hero} {exclaim2}, "Thank you, {friend}!"',
        "{hero} hugged the {toy_adj} {toy} and never lost it again.",
        moral("good friends help each other"),
    ),
    "sharing": (
        OPENERS,
        "One day, {grown} gave {hero} {baked_adj:a} {baked} for a snack.",
        "{hero} was about to eat it when {hero:he} saw {friend} sitting alone on a bench.",
        "{friend} looked sad and hungry.",
        '"What is wrong?" asked {hero}.',
        '"I forgot my snack at home," {reply} {friend}.',
        Maybe("{hero} looked at the {baked} and thought for a moment."),
        "Then {hero:he} broke the {baked} in two and gave half to {friend}.",
        '"Thank you!" {exclaim} {friend}.',
        "They ate the {baked_adj} {baked} together and {fun} all afternoon.",
        Maybe("Somehow, the {baked} tasted even better when it was shared."),
        "That night, {hero} told {grown} all about {friend} and the {baked}.",
        moral("sharing makes everyone happy"),
    ),
    "trip": (
        OPENERS,
        "One summer morning, {grown} said it was time for a trip to the {nature2}.",
        "{hero} was so excited that {hero:he} {move} around the house.",
        "{hero:He} packed {hero:his} {cloth_adj} {cloth} and a snack.",
        "They traveled to the {nature2} in {ride_adj:a} {ride}.",
        "At the {nature2}, {hero} saw {bird_adj:a} {bird} sitting on a branch.",
        '"Look at that {bird}!" {exclaim} {hero}.',
        "{hero} and {grown} {fun} and {fun2} all day long.",
        Maybe("They had a picnic under a big shady tree."),
        Maybe("{hero} wore {hero:his} {cloth} when the wind got chilly."),
        "When the sun went down, they went back home.",
        "That night, {hero} dreamed about the {nature2} and the {bird_adj} {bird}.",
        moral("trips with family make happy memories"),
    ),
    "fear": (
        OPENERS,
        "{hero} was afraid of the {wild} that lived in the {nature2}.",
        "Every night, {hero:he} thought about the {wild} and {sad}.",
        "One day, {hero:he} went to the {nature2} with {grown} to pick berries.",
        "Suddenly, {hero} saw {wild_adj:a} {wild} behind {outspot_adj:a} {outspot}.",
        "{hero:His} knees shook, and {hero:he} wanted to run away.",
        '"Do not be scared," {reply} {grown}.',
        Maybe('"The {wild} is just as scared of you," {grown:he} added.'),
        "{hero} took a deep breath and stood very still.",
        "The {wild_adj} {wild} looked at {hero}, then walked slowly away.",
        Maybe("{hero} {happy} at {grown}."),
        "After that day, {hero} was never afraid of the {wild} again.",
        moral("being brave means facing your fears"),
    ),
    "birthday": (
        "Today was {hero}'s birthday, and {hero:he} felt very happy.",
        "{grown} baked {baked_adj:a} {baked} with candles on top.",
        Maybe("In the kitchen, {hero} {cook} and {cook2} to help."),
        "All of {hero:his} friends came to the party, and {friend} came first.",
        "{friend} gave {hero} a little box tied with a bow.",
        "Inside was {gift_adj:a} {gift}!",
        '"I love it!" {exclaim} {hero}.',
        "Everyone sang, and {hero} blew out the candles.",
        "They ate the {baked} and {fun} until the sun went down.",
        Maybe("{hero} {handle} the {gift} all evening."),
        "When the party was over, {hero} put the {gift_adj} {gift} next to {hero:his} bed.",
        moral("friends make every day special"),
    ),
    "new_friend": (
        OPENERS,
        "One day, {friend} moved into the house next door.",
        "{friend:He} {friend:was} new in town and did not know anyone.",
        "{hero} saw {friend} sitting on the steps with {toy_adj:a} {toy}.",
        "{hero} wanted to say hello, but {hero:he} felt shy.",
        Maybe("{hero:He} {sad} and almost went back inside."),
        '"Can I play with your {toy}?" asked {hero}.',
        '"Yes, let\'s play together!" {exclaim} {friend}.',
        "{hero} and {friend} {move} to the {town} and {fun} all day.",
        Maybe("They took turns with the {toy} and never fought."),
        "Soon they were best friends.",
        "Every day after that, {hero} and {friend} played with the {toy_adj} {toy} together.",
        moral("a kind hello can make a new friend"),
    ),
    "helping": (
        OPENERS,
        "One afternoon, {hero} saw {friend} trying to carry {haul_adj:a} {haul} up the hill.",
        "The {haul} was very heavy, and {friend} {sad}.",
        '"Let me help you," {reply} {hero}.',
        "{hero} took one side of the {haul}, and {friend} took the other.",
        Maybe("It was hard work, but they did not give up."),
        "Step by step, they carried the {haul} all the way to {friend}'s house.",
        '"Thank you for helping me," {reply2} {friend}.',
        "{friend} gave {hero} {fruit_adj:a} {fruit} as a thank you.",
        Maybe("{hero} {happy} and ate the {fruit} on the way home."),
        "That night, {hero} told {hero:his} family about {friend} and the {haul_adj} {haul}.",
        moral("helping others makes your heart happy"),
    ),
    "storm": (
        "{hero} had {pet_adj:a} {pet} that {hero:he} loved very much.",
        "Every morning, {hero} {care} the {pet} and {care2} it.",
        "One evening, dark clouds filled the sky.",
        OneOf("Soon thunder boomed and rain poured down.", "Soon the wind howled and rain beat on the windows."),
        "The {pet} was scared and hid under the {furn}.",
        Maybe("{hero} {search} under the {furn} and found it shaking."),
        '"Do not be afraid, little {pet}," {reply} {hero}.',
        "{hero} wrapped the {pet} in a blanket and held it close.",
        "{hero:He} sang a soft song until the storm was over.",
        Maybe("In the morning, the sun came out and the sky was blue."),
        "Then {hero} and {hero:his} {pet_adj} {pet} went outside to play in the puddles.",
        moral("love can make fear go away"),
    ),
    "building": (
        OPENERS,
        "One day, {hero} and {friend} decided to build {struct_adj:a} {struct}.",
        "They gathered sticks, boxes, and string from the yard.",
        "They {build} and {build2} all morning.",
        "At last, the {struct} was ready.",
        "But then a big gust of wind came, and the {struct} fell down!",
        Maybe('"Oh no!" {exclaim} {friend}.'),
        "{hero} wanted to cry, but then {hero:he} had an idea.",
        '"Let\'s build it again, and make it stronger," {reply} {hero}.',
        "This time they {build3} every piece with extra care.",
        Maybe("{grown} came out to watch and {happy}."),
        "When they were done, the {struct} stood tall and strong.",
        "{hero} and {friend} played in their {struct_adj} {struct} until dinner time.",
        moral("you should try again when things go wrong"),
    ),
    "race": (
        OPENERS,
        "One day, there was a big race near the {nature2}.",
        "The winner would get {gift_adj:a} {gift}.",
        "{hero} and {friend} both wanted to win.",
        "When the race began, they {move} as fast as they could.",
        "{friend} was in front, but then {friend:he} tripped and fell.",
        "{hero} could have kept going, but {hero:he} stopped to help.",
        '"Are you hurt?" asked {hero}.',
        '"Just a little," {reply} {friend}.',
        "{hero} helped {friend} up, and they crossed the finish line together.",
        Maybe("Everyone clapped and cheered for them."),
        "The judge gave the {gift_adj} {gift} to {hero} for being so kind.",
        Maybe("{hero} shared the {gift} with {friend}."),
        moral("kindness matters more than winning"),
    ),
    "honesty": (
        "{grown} had {dish_adj:a} {dish} that {grown:he} loved very much.",
        "One day, {hero} was playing ball in the house.",
        "{hero:He} threw the ball too high, and it hit the {dish}.",
        "The {dish} fell and broke into pieces!",
        "{hero} was scared and hid the pieces under the {furn_adj} {furn}.",
        Maybe("{hero:He} {sad} and did not know what to do."),
        'When {grown} came home, {grown:he} asked, "What happened to my {dish}?"',
        Maybe("{hero} wanted to say that the wind did it."),
        "But {hero:he} knew that lying was wrong.",
        '"I broke it, and I am sorry," {reply} {hero}.',
        "{grown} gave {hero} a big hug.",
        '"Thank you for telling the truth," {reply2} {grown}.',
        "Together, {hero} and {grown} glued the {dish_adj} {dish} back together.",
        moral("telling the truth is always best"),
    ),
    "garden": (
        OPENERS,
        "One spring day, {grown} gave {hero} a little bag of {plant} seeds.",
        "{hero} and {hero:his} friend {friend} dug a hole in the garden and planted the seeds.",
        "Every day, {hero:he} {garden} and {garden2} the garden.",
        Maybe("Some days {hero:he} {sad} because nothing was growing."),
        "{hero} waited and waited.",
        "Then one morning, {hero} saw a tiny green sprout.",
        Maybe("{hero:He} {move} inside to tell {grown}."),
        "Week after week, the sprout grew bigger and bigger.",
        "At last, it became {plant_adj:a} {plant}.",
        '"Look what we grew!" {exclaim} {hero}.',
        Maybe("{hero} and {friend} {happy} at each other."),
        "{hero} and {friend} were so proud of their {plant_adj} {plant}.",
        moral("good things take time and care"),
    ),
    "music": (
        OPENERS,
        "{hero} wanted to play the {instr} in the school show.",
        "{grown} gave {hero:him} {instr_adj:a} {instr} to practice with.",
        "At first, the notes sounded funny and squeaky.",
        "{hero:He} {sad}, but {hero:he} kept practicing every day.",
        Maybe("{friend} came over to listen and {happy}."),
        '"You sound better every day!" {exclaim} {friend}.',
        "On the night of the show, {hero} felt nervous.",
        '"Just do your best," {reply} {grown}.',
        "{hero} took a deep breath and began to play.",
        "The music was lovely, and everyone clapped.",
        Maybe("{hero:His} cheeks turned pink with joy."),
        "After the show, {hero} held {hero:his} {instr_adj} {instr} and felt very proud.",
        moral("practice helps you get better"),
    ),
    "winter": (
        "It was a cold winter day, and snow covered the ground.",
        "{hero} wanted to build a snowman with {friend}.",
        '{grown} said, "Put on your {cloth_adj} {cloth} first."',
        "But {hero} did not want to wear it.",
        "{hero:He} {move} outside without it.",
        "Soon {hero:his} nose and fingers were very cold.",
        Maybe("{hero:He} {sad} and shivered in the snow."),
        "{friend} was warm and cozy in {friend:his} {cloth2_adj} {cloth2}.",
        '"You should wear your {cloth} too," {reply} {friend}.',
        "{hero} went back inside and put on the {cloth_adj} {cloth}.",
        Maybe('"Good choice," {reply2} {grown}.'),
        "Then {hero} and {friend} built a big snowman, and {hero} stayed warm in {hero:his} {cloth}.",
        moral("grown-ups often give good advice"),
    ),
    "bug_rescue": (
        OPENERS,
        "One day, {hero} found {bug_adj:a} {bug} on the kitchen floor.",
        "The {bug} looked lost and far from home.",
        '"Do not worry, I will help you," {reply} {hero}.',
        "{hero} gently picked up the {bug} with a leaf.",
        Maybe("{friend} came to see what was going on."),
        "{hero:He} carried it outside to the flower bed.",
        "{hero} set the {bug} down on a soft green leaf.",
        Maybe("The {bug} sat still for a moment."),
        "{hero} {happy} as it crawled away to find its family.",
        "{hero} waved goodbye to the {bug_adj} {bug}.",
        moral("even tiny creatures need kindness"),
    ),
    "farm": (
        "One Saturday, {hero} and {grown} visited a farm in the country.",
        "The first animal {hero} met was {farm_adj:a} {farm}.",
        "{hero} {care} the {farm}, and it made a happy sound.",
        Maybe("Then {hero:he} met {farm2_adj:a} {farm2} and {care2} it too."),
        "Next, they stopped at a little market stand.",
        "{hero} chose {fruit_adj:a} {fruit} for a snack.",
        "{hero:He} took a big bite, and it was delicious.",
        Maybe('"Can I have a bite too?" asked {grown}.'),
        "{hero} gave a small piece of the {fruit} to the {farm}.",
        '"It likes the {fruit}!" {exclaim} {hero}.',
        "When it was time to go, {hero} waved goodbye to the {farm_adj} {farm}.",
        moral("every animal needs love and care"),
    ),
    "beach": (
        "One warm day, {hero} and {grown} went to the beach.",
        "{hero} saw {sea_adj:a} {sea} stuck in a tiny puddle on the sand.",
        "The puddle was drying up in the hot sun.",
        '"We have to help it!" {exclaim} {hero}.',
        "{hero} gently scooped up the {sea} with a bucket of water.",
        "{hero:He} {move} down to the edge of the sea.",
        "Then {hero:he} let the {sea} go into the cool water.",
        Maybe("The {sea} swam in a happy little circle."),
        "{hero} {happy} at {grown}.",
        Maybe('"You saved it," {reply} {grown}.'),
        "Every time {hero} visited the beach after that, {hero:he} looked for the {sea_adj} {sea}.",
        moral("small acts of kindness matter"),
    ),
}
