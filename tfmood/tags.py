"""The 56 MTG-Jamendo mood/theme tags in canonical order: the one source of truth.

The order is MTG's `data/tags/moodtheme_split.txt` (alphabetical). Every label vector, score
matrix, submission file and SavedModel output in tfmood uses this column order.
"""

PREFIX = "mood/theme---"

TAGS = (
    "action", "adventure", "advertising", "background", "ballad", "calm", "children",
    "christmas", "commercial", "cool", "corporate", "dark", "deep", "documentary", "drama",
    "dramatic", "dream", "emotional", "energetic", "epic", "fast", "film", "fun", "funny",
    "game", "groovy", "happy", "heavy", "holiday", "hopeful", "inspiring", "love",
    "meditative", "melancholic", "melodic", "motivational", "movie", "nature", "party",
    "positive", "powerful", "relaxing", "retro", "romantic", "sad", "sexy", "slow", "soft",
    "soundscape", "space", "sport", "summer", "trailer", "travel", "upbeat", "uplifting",
)
NUM_TAGS = len(TAGS)
TAG_INDEX = {tag: i for i, tag in enumerate(TAGS)}


def tag_index(tag: str) -> int:
    """Column of `tag`, accepting both `happy` and `mood/theme---happy`."""
    name = tag[len(PREFIX):] if tag.startswith(PREFIX) else tag
    try:
        return TAG_INDEX[name]
    except KeyError:
        raise KeyError(
            f"Unknown mood/theme tag {tag!r}: not one of the {NUM_TAGS} tags of the split files "
            f"(e.g. {', '.join(TAGS[:4])}, ...)."
        ) from None
