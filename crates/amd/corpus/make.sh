#!/usr/bin/env bash
# Makes the labelled answering-machine corpus (issue 19): 8 kHz mono
# G.711 mu-law, headerless (.ul), one file per call from the answer on, and
# labels.tsv describing each. Needs espeak-ng and sox (apt-get install
# espeak-ng sox); the files are committed, so the tests never run this.
#
#   crates/amd/corpus/make.sh        # rewrites human/ machine/ sit/ silence/ and labels.tsv
#
# - human/   100 answers: "Hello?", "Yes, speaking", "Who is this?", ...,
#            several voices, speeds and pitches, 0.2-2.5 s of silence before
#            (silence-then-hello), every fourth one in line noise.
# - machine/ 100 voicemail greetings, short and long; 70 end with a beep
#            (350-1,950 Hz, 200-1,000 ms, -6 to -26 dBFS, after 0.2-0.8 s),
#            the others end in silence (some with 1 s of it recorded);
#            every fifth one in line noise.
# - sit/     12 special information tones (the four Telcordia sequences and
#            the ITU-T E.180 nominal one) followed by an announcement.
# - silence/ 8 calls where nobody speaks: digital silence, line noise.
#
# The corpus test (crates/amd/tests/corpus.rs) plays each file and then
# silence up to 30 s. sox runs with -R (repeatable noise); espeak-ng is
# deterministic, so the same tools give the same files.
set -euo pipefail
cd "$(dirname "$0")"
command -v espeak-ng >/dev/null && command -v sox >/dev/null || {
  echo "make.sh: needs espeak-ng and sox (apt-get install espeak-ng sox)" >&2
  exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf human machine sit silence
mkdir -p human machine sit silence
labels=labels.tsv
printf 'file\tclass\tbeep_hz\tbeep_start_ms\tbeep_ms\tvoice\tspeed\tpitch\tnoise\ttext\n' >"$labels"

R=8000
# speak TEXT VOICE SPEED PITCH PEAK_DB OUT: 8 kHz mono speech, peak at PEAK_DB.
speak() {
  espeak-ng -v "$2" -s "$3" -p "$4" -w "$tmp/raw.wav" "$1"
  sox -R "$tmp/raw.wav" -r $R -c 1 -b 16 "$6" gain -n "$5"
}
# silence MS OUT
silence() { sox -R -n -r $R -c 1 -b 16 "$2" trim 0 "$(ms "$1")"; }
# tone HZ MS DBFS OUT
tone() { sox -R -n -r $R -c 1 -b 16 "$4" synth "$(ms "$2")" sine "$1" gain "$3"; }
# ms MS: seconds for sox
ms() { awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }'; }
# noisy IN KIND DBFS OUT: IN mixed with KIND (whitenoise, pinknoise,
# brownnoise) noise peaking at DBFS, band-limited to a telephone channel's
# 300-3,400 Hz as line noise is.
noisy() {
  local len
  len=$(soxi -D "$1")
  sox -R -n -r $R -c 1 -b 16 "$tmp/noise.wav" synth "$len" "$2" sinc 300-3400 gain -n "$3"
  sox -R -m -v 1 "$1" -v 1 "$tmp/noise.wav" "$4"
}
# save IN OUT.ul
save() { sox -R "$1" -r $R -c 1 -t ul "$2"; }

voices=(en-us en-gb en-gb-x-rp en-gb-scotland en-029 en-us+f3 en-us+m3 en-gb+f2 en+f4 en-us+m7 en-gb-x-gbclan)
speeds=(150 175 200 130 165 190 145)
# Recorded greetings are read at an even pace.
greeting_speeds=(175 160 190 200 170 185)
pitches=(50 35 65 45 75 25 55)
noises=(pinknoise whitenoise brownnoise)
# Peak levels of the line noise (its RMS is 10-12 dB lower).
noise_db=(-38 -34 -42 -36)

# ---- humans ----
hellos=("Hello?" "Hello." "Hi." "Yes?" "Yeah?" "Yes, speaking." "Who is this?" "Hello, who's this?"
  "Speaking." "Hi there." "Hello, yes?" "Good morning." "Hey." "Hello? Hello?" "Yes, hello?" "Hi, who's calling?"
  "Mm, hello?" "This is Sam." "Hello, Maria speaking." "Yep?")
leads=(300 600 900 450 1200 250 700 2000 800 1500 350 2500)
for i in $(seq 0 99); do
  text=${hellos[$((i % ${#hellos[@]}))]}
  v=${voices[$((i % ${#voices[@]}))]}
  s=${speeds[$((i / 3 % ${#speeds[@]}))]}
  p=${pitches[$((i / 2 % ${#pitches[@]}))]}
  lead=${leads[$((i % ${#leads[@]}))]}
  peak=$(( -3 - (i % 4) * 5 ))
  speak "$text" "$v" "$s" "$p" "$peak" "$tmp/speech.wav"
  silence "$lead" "$tmp/lead.wav"
  silence 600 "$tmp/trail.wav"
  sox "$tmp/lead.wav" "$tmp/speech.wav" "$tmp/trail.wav" "$tmp/call.wav"
  noise=-
  if (( i % 4 == 3 )); then
    noise="${noises[$((i / 4 % 3))]}@${noise_db[$((i / 4 % 4))]}"
    noisy "$tmp/call.wav" "${noise%@*}" "${noise#*@}" "$tmp/mixed.wav"
    mv "$tmp/mixed.wav" "$tmp/call.wav"
  fi
  name=$(printf 'human/h%03d.ul' "$i")
  save "$tmp/call.wav" "$name"
  printf '%s\thuman\t-\t-\t-\t%s\t%s\t%s\t%s\t%s\n' "$name" "$v" "$s" "$p" "$noise" "$text" >>"$labels"
done

# ---- machines ----
greetings=(
  "Hi, you've reached John Smith. I can't take your call right now. Please leave a message after the tone."
  "The person you are calling is not available. Please leave your message after the tone."
  "Hello, this is Sarah. Sorry I missed your call. Leave your name and number and I'll get back to you."
  "You have reached the voicemail of five five five, zero one two three. Please leave a message."
  "Thank you for calling Acme Dental. Our office is closed. Please leave a message."
  "Hey, it's Mike. Leave a message."
  "Leave a message."
  "Please leave a message after the beep."
  "Hi! You've reached Tom and Linda. We're not home right now, so leave us a message."
  "The number you have called is not available. At the tone, please record your message."
  "Hello, you have reached the mailbox of David. I am away from my desk. Please leave a brief message."
  "Hi, this is Anna. Leave a message."
  "Sorry, we can't come to the phone right now. Please leave your name, number and a short message."
  "Your call has been forwarded to an automated voice messaging system. Five five five, four four four is not available."
  "Hello. You've reached the Johnsons. Please leave a message."
  "This is Dr. Patel's office. For emergencies, please hang up and dial nine one one. Otherwise, leave a message."
)
beep_hz=(1000 440 850 1400 600 1950 350 1800 1200 700 950)
beep_ms=(200 250 400 600 1000 300 500)
beep_db=(-6 -12 -18 -22 -26 -10)
gaps=(300 500 200 800 400 600)
for i in $(seq 0 99); do
  text=${greetings[$((i % ${#greetings[@]}))]}
  v=${voices[$(((i * 3 + 1) % ${#voices[@]}))]}
  s=${greeting_speeds[$((i / 2 % ${#greeting_speeds[@]}))]}
  p=${pitches[$((i / 3 % ${#pitches[@]}))]}
  peak=$(( -3 - (i % 3) * 6 ))
  lead=$(( 100 + (i % 5) * 150 ))
  speak "$text" "$v" "$s" "$p" "$peak" "$tmp/speech.wav"
  silence "$lead" "$tmp/lead.wav"
  parts=("$tmp/lead.wav" "$tmp/speech.wav")
  hz=- start=- len=-
  if (( i % 10 < 7 )); then
    hz=${beep_hz[$((i % ${#beep_hz[@]}))]}
    len=${beep_ms[$((i / 2 % ${#beep_ms[@]}))]}
    db=${beep_db[$((i % ${#beep_db[@]}))]}
    gap=${gaps[$((i % ${#gaps[@]}))]}
    silence "$gap" "$tmp/gap.wav"
    tone "$hz" "$len" "$db" "$tmp/beep.wav"
    silence 200 "$tmp/after.wav"
    parts+=("$tmp/gap.wav" "$tmp/beep.wav" "$tmp/after.wav")
    speech_end=$(awk -v a="$(soxi -D "$tmp/lead.wav")" -v b="$(soxi -D "$tmp/speech.wav")" 'BEGIN { printf "%d", (a + b) * 1000 + 0.5 }')
    start=$(( speech_end + gap ))
  elif (( i % 10 == 9 )); then
    silence 1000 "$tmp/after.wav"
    parts+=("$tmp/after.wav")
  fi
  sox "${parts[@]}" "$tmp/call.wav"
  noise=-
  if (( i % 5 == 2 )); then
    noise="${noises[$((i / 5 % 3))]}@${noise_db[$((i / 5 % 4))]}"
    noisy "$tmp/call.wav" "${noise%@*}" "${noise#*@}" "$tmp/mixed.wav"
    mv "$tmp/mixed.wav" "$tmp/call.wav"
  fi
  name=$(printf 'machine/m%03d.ul' "$i")
  save "$tmp/call.wav" "$name"
  printf '%s\tmachine\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$hz" "$start" "$len" "$v" "$s" "$p" "$noise" "$text" >>"$labels"
done

# ---- special information tones ----
# Telcordia GR-1162: (first, second) tone, third always 1776.7 Hz / 380 ms;
# ITU-T E.180: 950/1400/1800 Hz, 330 ms each.
sits=("985.2:380 1428.5:380 1776.7:380" "913.8:274 1370.6:274 1776.7:380"
  "985.2:380 1370.6:274 1776.7:380" "913.8:274 1428.5:380 1776.7:380"
  "950:330 1400:330 1800:330" "913.8:274 1428.5:274 1776.7:380")
announcements=("The number you have dialed is not in service." "We're sorry, all circuits are busy now.")
for i in $(seq 0 11); do
  seq_=${sits[$((i % ${#sits[@]}))]}
  db=$(( -12 - (i % 3) * 6 ))
  silence $(( 150 + i * 40 )) "$tmp/lead.wav"
  parts=("$tmp/lead.wav")
  k=0
  for t in $seq_; do
    tone "${t%%:*}" "${t##*:}" "$db" "$tmp/sit$k.wav"
    parts+=("$tmp/sit$k.wav")
    k=$((k + 1))
  done
  silence 200 "$tmp/gap.wav"
  text=${announcements[$((i % 2))]}
  speak "$text" "${voices[$((i % ${#voices[@]}))]}" 160 50 -3 "$tmp/speech.wav"
  parts+=("$tmp/gap.wav" "$tmp/speech.wav")
  sox "${parts[@]}" "$tmp/call.wav"
  name=$(printf 'sit/s%03d.ul' "$i")
  save "$tmp/call.wav" "$name"
  printf '%s\tsit\t-\t-\t-\t-\t-\t-\t-\t%s %s\n' "$name" "$seq_" "$text" >>"$labels"
done

# ---- nobody speaks ----
for i in $(seq 0 7); do
  noise=-
  silence 2000 "$tmp/call.wav"
  if (( i % 2 == 1 )); then
    silence 5000 "$tmp/call.wav"
    noise="${noises[$((i % 3))]}@${noise_db[$((i % 4))]}"
    noisy "$tmp/call.wav" "${noise%@*}" "${noise#*@}" "$tmp/mixed.wav"
    mv "$tmp/mixed.wav" "$tmp/call.wav"
  fi
  name=$(printf 'silence/n%03d.ul' "$i")
  save "$tmp/call.wav" "$name"
  printf '%s\tsilence\t-\t-\t-\t-\t-\t-\t%s\t-\n' "$name" "$noise" >>"$labels"
done

du -sh . >&2
