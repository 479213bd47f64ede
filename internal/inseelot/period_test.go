package inseelot

import (
	"testing"
	"time"
)

func TestPeriod(t *testing.T) {
	loc := paris(t)
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, loc) }
	cases := []struct {
		name     string
		nature   string
		t        time.Time
		from, to time.Time
		hours    float64
	}{
		// Births: the calendar day, 23 h or 25 h on DST change days.
		{"jour ordinaire", NatureNaissance, time.Date(2025, 3, 12, 15, 4, 0, 0, loc), day(2025, 3, 12), day(2025, 3, 13), 24},
		{"passage à l'heure d'été", NatureNaissance, time.Date(2025, 3, 30, 12, 0, 0, 0, loc), day(2025, 3, 30), day(2025, 3, 31), 23},
		{"passage à l'heure d'hiver", NatureNaissance, time.Date(2025, 10, 26, 2, 30, 0, 0, loc), day(2025, 10, 26), day(2025, 10, 27), 25},
		{"instant UTC de la veille", NatureNaissance, time.Date(2025, 3, 29, 23, 30, 0, 0, time.UTC), day(2025, 3, 30), day(2025, 3, 31), 23},
		{"minuit pile", NatureNaissance, day(2025, 3, 31), day(2025, 3, 31), day(2025, 4, 1), 24},
		{"dernière seconde du jour", NatureNaissance, day(2025, 3, 31).Add(-time.Second), day(2025, 3, 30), day(2025, 3, 31), 23},

		// Deaths: ISO week from Monday, cut at 1 January.
		{"dimanche de l'heure d'été", NatureDeces, time.Date(2025, 3, 30, 23, 59, 0, 0, loc), day(2025, 3, 24), day(2025, 3, 31), 167},
		{"lundi minuit", NatureDeces, day(2025, 3, 31), day(2025, 3, 31), day(2025, 4, 7), 168},
		{"semaine de l'heure d'hiver", NatureDeces, time.Date(2025, 10, 22, 9, 0, 0, 0, loc), day(2025, 10, 20), day(2025, 10, 27), 169},
		{"fin d'année coupée", NatureDeces, time.Date(2025, 12, 31, 18, 0, 0, 0, loc), day(2025, 12, 29), day(2026, 1, 1), 72},
		{"début d'année coupé", NatureDeces, time.Date(2026, 1, 2, 8, 0, 0, 0, loc), day(2026, 1, 1), day(2026, 1, 5), 96},
		{"1er janvier un vendredi", NatureDeces, day(2021, 1, 1), day(2021, 1, 1), day(2021, 1, 4), 72},
		{"1er janvier un lundi", NatureDeces, time.Date(2024, 1, 3, 0, 0, 0, 0, loc), day(2024, 1, 1), day(2024, 1, 8), 168},
		{"Saint-Sylvestre UTC", NatureDeces, time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC), day(2026, 1, 1), day(2026, 1, 5), 96},

		// Marriages and stillbirths: the calendar month.
		{"mars (heure d'été)", NatureMariage, time.Date(2025, 3, 30, 3, 0, 0, 0, loc), day(2025, 3, 1), day(2025, 4, 1), 743},
		{"octobre (heure d'hiver)", NatureMariage, time.Date(2025, 10, 26, 2, 30, 0, 0, loc), day(2025, 10, 1), day(2025, 11, 1), 745},
		{"février bissextile", NatureDecesSansVie, time.Date(2024, 2, 29, 12, 0, 0, 0, loc), day(2024, 2, 1), day(2024, 3, 1), 696},
		{"décembre", NatureDecesSansVie, time.Date(2025, 12, 31, 23, 59, 59, 0, loc), day(2025, 12, 1), day(2026, 1, 1), 744},
		{"premier du mois en UTC", NatureMariage, time.Date(2025, 4, 30, 22, 0, 0, 0, time.UTC), day(2025, 5, 1), day(2025, 6, 1), 744},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from, to := Period(c.nature, c.t, loc)
			if !from.Equal(c.from) || !to.Equal(c.to) {
				t.Errorf("Period = [%s, %s), attendu [%s, %s)", from, to, c.from, c.to)
			}
			if h := to.Sub(from).Hours(); h != c.hours {
				t.Errorf("durée %v h, attendu %v h", h, c.hours)
			}
			if from.Location() != loc || to.Location() != loc {
				t.Errorf("bornes hors du fuseau de la commune : %s, %s", from.Location(), to.Location())
			}
		})
	}
}

// TestPeriodTiles: over three years, hour by hour, every instant is in
// exactly one period, periods start at local midnight and give
// themselves back, and a lot never spans two years.
func TestPeriodTiles(t *testing.T) {
	loc := paris(t)
	for _, nature := range Natures {
		var prevFrom, prevTo time.Time
		for at := time.Date(2024, 1, 1, 0, 30, 0, 0, loc); at.Year() < 2027; at = at.Add(time.Hour) {
			from, to := Period(nature, at, loc)
			if at.Before(from) || !at.Before(to) {
				t.Fatalf("%s : %s hors de [%s, %s)", nature, at, from, to)
			}
			if h, m, s := from.Clock(); h+m+s != 0 {
				t.Fatalf("%s : début %s hors minuit", nature, from)
			}
			if from.Year() != to.Add(-time.Nanosecond).Year() {
				t.Fatalf("%s : [%s, %s) sur deux années", nature, from, to)
			}
			if !from.Equal(prevFrom) {
				if !prevTo.IsZero() && !from.Equal(prevTo) {
					t.Fatalf("%s : trou ou chevauchement entre %s et %s", nature, prevTo, from)
				}
				if f2, t2 := Period(nature, from, loc); !f2.Equal(from) || !t2.Equal(to) {
					t.Fatalf("%s : Period(%s) = [%s, %s)", nature, from, f2, t2)
				}
				if nature == NatureDeces && from.Weekday() != time.Monday && !(from.Month() == time.January && from.Day() == 1) {
					t.Fatalf("semaine commençant un %s : %s", from.Weekday(), from)
				}
			}
			prevFrom, prevTo = from, to
		}
	}
}

func TestPeriodOtherZonesAndNatures(t *testing.T) {
	reunion, err := time.LoadLocation("Indian/Reunion")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 29, 21, 0, 0, 0, time.UTC) // 30 March 01:00 at Saint-Denis, 29 March 22:00 in Paris
	if from, _ := Period(NatureNaissance, at, reunion); from.Day() != 30 {
		t.Errorf("La Réunion : jour %d, attendu 30", from.Day())
	}
	if from, _ := Period(NatureNaissance, at, paris(t)); from.Day() != 29 {
		t.Errorf("Paris : jour %d, attendu 29", from.Day())
	}
	if from, to := Period(NatureNaissance, at, nil); from.Location() != time.UTC || to.Sub(from) != 24*time.Hour {
		t.Errorf("fuseau nil : [%s, %s)", from, to)
	}
	if from, to := Period("reconnaissance", at, reunion); !from.IsZero() || !to.IsZero() {
		t.Errorf("nature inconnue : [%s, %s)", from, to)
	}
}
