#!/usr/bin/env python3
"""Independent implementation of libquarot's Hadamard constructions beyond QuaRot's table,
written from the specification in README.md ("Widths beyond QuaRot's table"), not from the
Rust code. tests/constructions.rs runs it and compares its matrices with the library's.

    python3 tools/paley.py K [K ...]   prints, per K, one line "K <construction> <hex>":
                                       the K*K entries row-major, bit 1 for -1, packed
                                       into bytes MSB first, as hex.
"""
import sys


def prime_power(q):
    if q < 2:
        return None
    p = next((d for d in range(2, int(q ** 0.5) + 1) if q % d == 0), q)
    e, r = 0, q
    while r % p == 0:
        r //= p
        e += 1
    return (p, e) if r == 1 else None


class GF:
    """GF(p^e): element a <-> polynomial with coefficients = base-p digits of a (low first);
    modulus = the monic irreducible x^e + c(x) whose code sum c_i p^i is smallest."""

    def __init__(self, p, e):
        self.p, self.e, self.q = p, e, p ** e
        self.low = [0] if e == 1 else next(
            c for c in (self.digits(code) for code in range(self.q)) if self.irreducible(c))

    def digits(self, a, e=None):
        e = self.e if e is None else e
        out = []
        for _ in range(e):
            out.append(a % self.p)
            a //= self.p
        return out

    def irreducible(self, low):
        # Monic f of degree e is irreducible iff it has no root-free... use brute force:
        # f has no monic factor of degree d for 1 <= d <= e // 2.
        f = low + [1]
        for d in range(1, self.e // 2 + 1):
            for code in range(self.p ** d):
                g = self.digits(code, d) + [1]
                if all(x == 0 for x in self.polymod(f, g)):
                    return False
        return True

    def polymod(self, f, g):
        r = list(f)
        while len(r) >= len(g):
            top = r[-1]
            shift = len(r) - len(g)
            for i, gi in enumerate(g):
                r[shift + i] = (r[shift + i] - top * gi) % self.p
            r.pop()  # now zero
        return r

    def mul(self, a, b):
        if self.e == 1:
            return a * b % self.p
        da, db = self.digits(a), self.digits(b)
        prod = [0] * (2 * self.e - 1)
        for i, x in enumerate(da):
            for j, y in enumerate(db):
                prod[i + j] = (prod[i + j] + x * y) % self.p
        r = self.polymod(prod, self.low + [1]) if self.e > 1 else [prod[0] % self.p]
        r += [0] * (self.e - len(r))
        return sum(c * self.p ** i for i, c in enumerate(r))

    def sub(self, a, b):
        if self.e == 1:
            return (a - b) % self.p
        da, db = self.digits(a), self.digits(b)
        return sum(((x - y) % self.p) * self.p ** i for i, (x, y) in enumerate(zip(da, db)))

    def chi(self):
        squares = {self.mul(a, a) for a in range(1, self.q)}
        return [0] + [1 if a in squares else -1 for a in range(1, self.q)]


def construct(k):
    if k % 4 or k & (k - 1) == 0:
        return None, None
    q = k - 1
    if q % 4 == 3 and prime_power(q):
        f = GF(*prime_power(q))
        chi = f.chi()

        def h(i, j):
            if i == 0:
                return 1
            if j == 0:
                return -1
            if i == j:
                return 1
            return chi[f.sub(i - 1, j - 1)]
        return "paley1-q%d" % q, [[h(i, j) for j in range(k)] for i in range(k)]
    q = k // 2 - 1
    if q % 4 == 1 and prime_power(q):
        f = GF(*prime_power(q))
        chi = f.chi()

        def c(r, s):
            if r == 0 and s == 0:
                return 0
            if r == 0 or s == 0:
                return 1
            return chi[f.sub(r - 1, s - 1)]
        rows = [[0] * k for _ in range(k)]
        for r in range(q + 1):
            for s in range(q + 1):
                v = c(r, s)
                block = [[1, -1], [-1, -1]] if v == 0 else [[v, v], [v, -v]]
                for a in range(2):
                    for b in range(2):
                        rows[2 * r + a][2 * s + b] = block[a][b]
        return "paley2-q%d" % q, rows
    return None, None


def main():
    for arg in sys.argv[1:]:
        k = int(arg)
        name, h = construct(k)
        if h is None:
            print(k, "none", "-")
            continue
        bits = [1 if v < 0 else 0 for row in h for v in row]
        data = bytearray()
        for i in range(0, len(bits), 8):
            chunk = bits[i:i + 8] + [0] * (8 - len(bits[i:i + 8]))
            data.append(sum(b << (7 - j) for j, b in enumerate(chunk)))
        print(k, name, data.hex())


if __name__ == "__main__":
    main()
