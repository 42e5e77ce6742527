"""How durations are written in answers (times are written by the statements:
`services.store.read_sql.display_time`)."""

from __future__ import annotations


def format_duration(seconds: int) -> str:
    """`D天H时M分S秒`, leading zero units left out: `0秒`, `59秒`, `1时0分0秒`, `1天5时30分15秒`."""
    seconds = max(0, seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}天{hours}时{minutes}分{secs}秒"
    if hours:
        return f"{hours}时{minutes}分{secs}秒"
    if minutes:
        return f"{minutes}分{secs}秒"
    return f"{secs}秒"
