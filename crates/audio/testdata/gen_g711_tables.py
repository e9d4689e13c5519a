#!/usr/bin/env python3
"""Generates the independent G.711 reference tables the Rust tests compare
against. Run once; the outputs are committed. It is a direct transcription of
ulaw_compress/ulaw_expand/alaw_compress/alaw_expand from the ITU-T G.191
Software Tool Library (g711.c), written without looking at the Rust code.

Outputs (little-endian):
  g711_ulaw_encode.bin  65536 bytes: code for input i16 = index as u16
  g711_alaw_encode.bin  65536 bytes: same for A-law
  g711_ulaw_decode.bin  256 x i16: linear value for code 0..255
  g711_alaw_decode.bin  256 x i16
"""
import struct


def ulaw_compress(x):
    absno = ((~x) >> 2) if x < 0 else (x >> 2)
    absno += 33
    if absno > 0x1FFF:
        absno = 0x1FFF
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high = 0x0008 - segno
    low = 0x000F - ((absno >> segno) & 0x000F)
    out = (high << 4) | low
    if x >= 0:
        out |= 0x0080
    return out & 0xFF


def ulaw_expand(code):
    sign = -1 if code < 0x80 else 1
    mant = ~code
    exponent = (mant >> 4) & 0x7
    segment = exponent + 1
    mant &= 0x0F
    step = 4 << segment
    return sign * ((0x80 << exponent) + step * mant + step // 2 - 4 * 33)


def alaw_compress(x):
    ix = ((~x) >> 4) if x < 0 else (x >> 4)
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if x >= 0:
        ix |= 0x0080
    return (ix ^ 0x0055) & 0xFF


def alaw_expand(code):
    ix = (code ^ 0x0055) & 0x7F
    iexp = ix >> 4
    mant = ix & 0x0F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 0x0008
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


def main():
    inputs = [struct.unpack('<h', struct.pack('<H', u))[0] for u in range(65536)]
    with open('g711_ulaw_encode.bin', 'wb') as f:
        f.write(bytes(ulaw_compress(x) for x in inputs))
    with open('g711_alaw_encode.bin', 'wb') as f:
        f.write(bytes(alaw_compress(x) for x in inputs))
    with open('g711_ulaw_decode.bin', 'wb') as f:
        f.write(struct.pack('<256h', *[ulaw_expand(c) for c in range(256)]))
    with open('g711_alaw_decode.bin', 'wb') as f:
        f.write(struct.pack('<256h', *[alaw_expand(c) for c in range(256)]))


if __name__ == '__main__':
    main()
