#!/usr/bin/env python3
"""Held-out results of `kdbet protocol` by the subjects' age.

Usage: scripts/summarise-by-age.py EVALUATIONS_CSV MANIFEST_CSV [MEASURE ...]

EVALUATIONS_CSV: rows split,subject,model,measure,value (the evaluations.csv
that `kdbet protocol` writes). MANIFEST_CSV: a manifest with subject and age
columns (the shared IXI cases.csv). MEASURE: measures to tabulate (default
dice). Prints one Markdown table per measure: mean and standard deviation of
every model's held-out evaluations within each age band, subjects without an
age counted apart, and the Pearson correlation of the measure with age.
Standard library only.
"""
import csv
import math
import sys
from collections import defaultdict

AGE_BANDS = [(0, 40), (40, 60), (60, 200)]


def band_name(age):
    if age is None:
        return 'age unknown'
    for low, high in AGE_BANDS:
        if low <= age < high:
            return f'{low}-{high}' if high < 200 else f'{low}+'
    raise ValueError(f'age {age} outside every band')


def mean_sd(values):
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, sd


def pearson(pairs):
    if len(pairs) < 3:
        return float('nan')
    xs, ys = zip(*pairs)
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float('nan')


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    evaluations_file, manifest_file = argv[1], argv[2]
    measures = argv[3:] or ['dice']
    with open(manifest_file, newline='') as stream:
        rows = list(csv.DictReader(stream))
    if not rows or 'subject' not in rows[0] or 'age' not in rows[0]:
        sys.exit(f'{manifest_file}: needs subject and age columns')
    ages = {row['subject']: (float(row['age']) if row['age'].strip() else None) for row in rows}
    values = defaultdict(list)  # (measure, model, band) -> values
    with_age = defaultdict(list)  # (measure, model) -> (age, value)
    models = []
    with open(evaluations_file, newline='') as stream:
        for row in csv.DictReader(stream):
            if row['measure'] not in measures:
                continue
            if row['subject'] not in ages:
                sys.exit(f'{evaluations_file}: subject {row["subject"]} is not in {manifest_file}')
            age, value = ages[row['subject']], float(row['value'])
            values[row['measure'], row['model'], band_name(age)].append(value)
            if age is not None:
                with_age[row['measure'], row['model']].append((age, value))
            if row['model'] not in models:
                models.append(row['model'])
    if not values:
        sys.exit(f'{evaluations_file}: no rows for {", ".join(measures)}')
    bands = [band_name(low) for low, _ in AGE_BANDS] + ['age unknown']
    for measure in measures:
        present = [b for b in bands if any((measure, m, b) in values for m in models)]
        print(f'\n{measure}, held-out evaluations by age band (mean ± sd, n)\n')
        print('| model | ' + ' | '.join(present) + ' | correlation with age |')
        print('|---' * (len(present) + 2) + '|')
        for model in models:
            if not any((measure, model, b) in values for b in present):
                continue
            cells = []
            for band in present:
                if (measure, model, band) in values:
                    mean, sd = mean_sd(values[measure, model, band])
                    cells.append(f'{mean:.5f} ± {sd:.5f} ({len(values[measure, model, band])})')
                else:
                    cells.append('')
            print(f'| {model} | ' + ' | '.join(cells) + f' | {pearson(with_age[measure, model]):+.3f} |')


if __name__ == '__main__':
    main(sys.argv)
