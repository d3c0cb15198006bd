"""Lane enforcement: attribute GPU memory to pods, judge it against their lane limit, report or evict."""
