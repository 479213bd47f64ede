package seda

import "time"

// AccessRule gives the communicability rule of the acts of a register
// (Code du patrimoine L213-2): the rule identifier, the date the delay
// starts from and the delay in years.
//
//   - naissance, reconnaissance, mariage: AccessRule75, 75 years from the
//     register's closure; registers close on 31 December, so the delay
//     starts on 1 January of year+1 (naissance 1950 → 1951-01-01, free
//     on 2026-01-01).
//   - deces (stillbirths included: they are in the death register):
//     AccessRuleFree, 0 years, starting on 1 January of year, the
//     register's opening, so that the rule has expired for every act of
//     the register: death registers are communicable at once.
//
// Any other kind gets the 75-year rule: unknown registers fail closed.
// The "25 years after the person's death if sooner" alternative of L213-2
// is not computed: the death date is not known to the transfer.
func AccessRule(kind string, year int) (rule string, start time.Time, years int) {
	if kind == "deces" {
		return AccessRuleFree, time.Date(year, time.January, 1, 0, 0, 0, 0, time.UTC), 0
	}
	return AccessRule75, time.Date(year+1, time.January, 1, 0, 0, 0, 0, time.UTC), 75
}
