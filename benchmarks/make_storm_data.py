"""Generate zoo:storm's small speech set with espeak-ng: 50 short utterances (varied sentences, voices,
speeds, pitches), resampled to 16 kHz mono, silence-trimmed, 16-bit PCM, written to
edgekit/zoo/data/speech/NN_voice.wav. Run once by a maintainer (needs `apt-get install espeak-ng`);
the wavs are committed, so tests, training and evaluation never need espeak.

    python benchmarks/make_storm_data.py [--out edgekit/zoo/data/speech]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import wave
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please bring the red box to the kitchen.",
    "A cold wind blew across the empty field.",
    "She sells fresh bread at the corner shop.",
    "We should leave before the storm arrives.",
    "The train to the city was late again.",
    "My brother fixed the bike in ten minutes.",
    "Turn left at the second traffic light.",
    "The children laughed at the funny clown.",
    "Open the window and let the fresh air in.",
    "Seven small birds sat on the old fence.",
    "He wrote a long letter to his grandmother.",
    "The meeting starts at half past nine.",
    "Rain is expected for most of the weekend.",
    "Could you turn the music down a little?",
    "The museum opens early on Sunday mornings.",
    "A bright moon rose above the quiet harbour.",
    "They planted tomatoes along the garden wall.",
    "The engineer checked every cable twice.",
    "Bake the cake for forty minutes at most.",
    "Nobody knew the answer to the last question.",
    "The river flows slowly through the valley.",
    "Put the keys on the table by the door.",
    "Our flight was cancelled because of fog.",
    "The dog chased a ball into the lake.",
    "Speak clearly so everyone can hear you.",
    "Yellow leaves covered the narrow path.",
    "The doctor will see you in a moment.",
    "Fresh coffee makes the morning better.",
    "The library closes at eight tonight.",
    "A sudden noise woke the sleeping cat.",
    "Count the coins and write down the total.",
    "The farmer sold apples at the market.",
    "Heavy snow blocked the mountain road.",
    "Remember to water the plants on Friday.",
    "The old clock struck twelve at midnight.",
    "He painted the fence a pale shade of blue.",
    "Thank you for calling, how can I help?",
    "The soup needs a little more salt.",
    "Lightning flashed over the distant hills.",
    "Every student passed the final exam.",
    "Wash your hands before you eat dinner.",
    "The ship sailed north along the coast.",
    "I lost my umbrella on the bus today.",
    "Gentle waves rolled onto the sandy beach.",
    "The pilot announced a smooth landing.",
    "Five friends shared a large pizza.",
    "Close the door quietly when you leave.",
    "The radio played an old jazz song.",
    "Winter evenings are long and dark here.",
]
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
          "en-gb-x-gbcwmd"]
VARIANTS = ["m1", "f1", "m3", "f2", "m4", "f3", "m7", "f4", "klatt", "f5"]
TARGET_RATE = 16000


def synthesize(text: str, voice: str, speed: int, pitch: int) -> tuple[np.ndarray, int]:
    wav_bytes = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav_bytes)) as handle:
        rate = handle.getframerate()
        data = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    return data.astype(np.float32) / 32768.0, rate


def trim(x: np.ndarray, rate: int, threshold: float = 0.01, margin_s: float = 0.05) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) > threshold * np.abs(x).max())
    margin = int(margin_s * rate)
    return x[max(0, loud[0] - margin): loud[-1] + margin]


def write_wav(path: Path, x: np.ndarray) -> None:
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(TARGET_RATE)
        handle.writeframes(pcm.tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "edgekit/zoo/data/speech")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    total = 0
    for i, text in enumerate(SENTENCES):
        voice = f"{VOICES[i % len(VOICES)]}+{VARIANTS[(i * 3) % len(VARIANTS)]}"
        speed = int(rng.integers(180, 226))
        pitch = int(rng.integers(25, 75))
        x, rate = synthesize(text, voice, speed, pitch)
        g = gcd(TARGET_RATE, rate)
        x = resample_poly(trim(x, rate), TARGET_RATE // g, rate // g).astype(np.float32)
        x *= float(rng.uniform(0.3, 0.9)) / max(1e-6, float(np.abs(x).max()))  # varied levels
        path = args.out / f"{i:02d}_{voice.replace('+', '_')}.wav"
        write_wav(path, x)
        total += path.stat().st_size
        print(f"{path.name}: {len(x) / TARGET_RATE:.2f} s, speed {speed}, pitch {pitch}")
    print(f"{len(SENTENCES)} files, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
