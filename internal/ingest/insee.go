package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/etatcivil/etatcivil/internal/inseelot"
	"github.com/etatcivil/etatcivil/internal/manifest"
	"github.com/etatcivil/etatcivil/internal/store"
)

// inseeAct is an archived act version as the INSEE lot needs it.
func inseeAct(a store.LotAct) inseelot.Act {
	out := inseelot.Act{ActID: a.ActID, Number: a.Number, Version: a.Version, Kind: a.Kind, SansVie: a.SansVie,
		ActDate: a.ActDate, EventDate: a.EventDate}
	for _, p := range a.Persons {
		out.Persons = append(out.Persons, inseelot.Person{Role: p.Role, Surname: p.Surname, GivenNames: p.GivenNames,
			Sex: p.Sex, BirthDate: p.BirthDate, BirthPlace: p.BirthPlace})
	}
	return out
}

// inseeLot rebuilds the INSEE lot of l from its committed act set: its
// group key (commune/nature/period start/year, see INSEEPolicy) gives the
// period in the commune's time zone, its creation time the issue date,
// so that building it twice gives the same bytes.
func inseeLot(l store.Lot, acts []store.LotAct) (inseelot.Lot, error) {
	parts := strings.SplitN(l.GroupKey, "/", 4)
	if len(parts) != 4 {
		return inseelot.Lot{}, fmt.Errorf("lot %s : groupe « %s » illisible", l.ID, l.GroupKey)
	}
	loc := manifest.Location(parts[0])
	start, err := time.Parse(time.RFC3339, parts[2])
	if err != nil {
		return inseelot.Lot{}, fmt.Errorf("lot %s : période « %s » illisible", l.ID, parts[2])
	}
	from, to := inseelot.Period(parts[1], start.In(loc), loc)
	lot := inseelot.Lot{ID: l.Key, Commune: parts[0], Nature: parts[1], From: from, To: to, Issued: l.CreatedAt}
	for _, a := range acts {
		lot.Hub = a.HubID
		lot.Acts = append(lot.Acts, inseeAct(a))
	}
	return lot, nil
}

// screenINSEE refuses locally the transmissions of an INSEE group whose
// act cannot make a bulletin, and returns the others.
func screenINSEE(ctx context.Context, d *Deps, key string, ids []string) ([]string, error) {
	parts := strings.SplitN(key, "/", 4)
	if len(parts) != 4 {
		return nil, fmt.Errorf("groupe INSEE « %s » illisible", key)
	}
	acts, err := d.Store.LotActsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	var keep []string
	refuse := map[string]string{}
	for _, a := range acts {
		if err := inseelot.Check(inseeAct(a), parts[1]); err != nil {
			refuse[a.TransmissionID] = "Refus local, rien n'a été envoyé : " + err.Error()
			continue
		}
		keep = append(keep, a.TransmissionID)
	}
	if len(refuse) > 0 {
		if err := d.Store.RefuseLocally(ctx, refuse); err != nil {
			return nil, err
		}
	}
	return keep, nil
}
