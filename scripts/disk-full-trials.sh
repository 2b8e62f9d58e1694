#!/usr/bin/env bash
# Issue 33's trial: the default config trained for 5 epochs into a tmpfs of a random size
# (150 KiB to 2 MiB), N times. Each trial must end in exit 0, or in exit 1 with one line
# naming a file and "No space left on device", no temporary file, and a last.pt from
# which `train --resume` finishes once the tmpfs is made larger. Needs root (mount).
#   usage: sudo scripts/disk-full-trials.sh [N]      (default 20; ~3 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/build/mmfusion
trials=${1:-20}
work=$(mktemp -d)
mnt=$work/mnt
mkdir -p "$mnt"
trap 'umount "$mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
clean=0 full=0 bad=0
for i in $(seq 1 "$trials"); do
  size=$(( (RANDOM % 1900 + 150) ))k
  mount -t tmpfs -o size=$size tmpfs "$mnt"
  set +e
  "$bin" train --config configs/default.json --set train.epochs=5 --out "$mnt/run" > /dev/null 2> "$work/err"
  code=$?
  set -e
  last=$(tail -1 "$work/err")
  temps=$(find "$mnt" -name '.*.tmp*' | wc -l)
  verdict=bad
  if [ $code -eq 0 ]; then
    verdict=completed; clean=$((clean + 1))
  elif [ $code -eq 1 ] && [[ $last == *"No space left on device"* ]] && [ "$temps" -eq 0 ]; then
    verdict="full, clean"
    if [[ $last == *"holds epoch"* ]]; then
      mount -o remount,size=64m "$mnt"
      if "$bin" train --resume "$mnt/run/checkpoints/last.pt" > /dev/null 2>&1; then
        verdict="full, clean, resumed"
      else
        verdict="full, resume FAILED"
      fi
    fi
    full=$((full + 1))
  fi
  [[ $verdict == bad || $verdict == *FAILED* ]] && bad=$((bad + 1))
  printf '%2d  %6s  exit %3d  %-22s %s\n' "$i" "$size" "$code" "$verdict" "${last:0:110}"
  umount "$mnt"
done
echo "trials $trials: completed $clean, stopped cleanly on a full disk $full, bad $bad"
[ "$bad" -eq 0 ]
