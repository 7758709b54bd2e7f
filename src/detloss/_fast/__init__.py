"""Hand-written backward passes, each where ``detloss bench`` measured autograd of the same value
formula at least 1.5x slower or 2x larger in peak memory, each tested against that autograd.

Private: the public losses call into this folder; nothing else needs to know it exists.
"""
