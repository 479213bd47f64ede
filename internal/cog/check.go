package cog

import (
	"errors"
	"fmt"
)

// ErrInvalidCode is wrapped by every error Check returns, so callers can
// test errors.Is(err, cog.ErrInvalidCode).
var ErrInvalidCode = errors.New("code commune invalide")

// CodeError says why a string is not a syntactically valid INSEE commune
// code. Its message is French: it is meant for hubs and town halls.
type CodeError struct {
	Code   string // the code as given
	Reason string // French explanation, without the code
}

func (e *CodeError) Error() string {
	return fmt.Sprintf("code commune « %s » : %s", e.Code, e.Reason)
}

// Unwrap lets errors.Is match ErrInvalidCode.
func (e *CodeError) Unwrap() error { return ErrInvalidCode }

func codeErr(code, format string, args ...any) error {
	return &CodeError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// Check tells whether code has the shape of an INSEE commune code. It checks
// syntax only, not existence (use Snapshot.Lookup for that):
//   - exactly 5 characters, text (leading zeros kept: "01001");
//   - metropolitan départements 01 to 95, the two Corsican ones written 2A
//     and 2B (upper case); 20 is accepted for Corsican codes in force before
//     1976, which the COG keeps as former codes (20004 became 2A004);
//   - overseas: 971 to 978 (DROM and Saint-Pierre-et-Miquelon,
//     Saint-Barthélemy, Saint-Martin) and 984 to 989 (TAAF, Mayotte's
//     pre-2011 prefix 985, Wallis-et-Futuna, Polynésie, Nouvelle-Calédonie,
//     Clipperton), followed by 2 digits;
//   - 99xxx is a foreign country code, not a commune;
//   - the commune number is never zero (xx000, 97x00).
func Check(code string) error {
	switch {
	case code == "":
		return codeErr(code, "le code est vide")
	case len(code) != 5:
		n := len([]rune(code))
		if n == 4 && allDigits(code) {
			return codeErr(code, "4 caractères au lieu de 5 (zéro initial perdu ? essayez « 0%s »)", code)
		}
		return codeErr(code, "%d caractères au lieu de 5", n)
	}
	d0, d1 := code[0], code[1]
	if d0 == '2' && (d1 == 'A' || d1 == 'B') {
		if !allDigits(code[2:]) {
			return codeErr(code, "après 2A ou 2B, trois chiffres sont attendus")
		}
		if code[2:] == "000" {
			return codeErr(code, "le numéro de commune ne peut pas être 000")
		}
		return nil
	}
	if d0 == '2' && (d1 == 'a' || d1 == 'b') {
		return codeErr(code, "les départements corses s'écrivent en majuscules : 2A ou 2B")
	}
	if !allDigits(code) {
		return codeErr(code, "seuls des chiffres sont attendus (ou 2A/2B pour la Corse)")
	}
	dep := int(d0-'0')*10 + int(d1-'0')
	switch {
	case dep == 0:
		return codeErr(code, "le département 00 n'existe pas")
	case dep <= 95:
		if code[2:] == "000" {
			return codeErr(code, "le numéro de commune ne peut pas être 000")
		}
		return nil
	case dep == 96:
		return codeErr(code, "le département 96 n'existe pas")
	case dep == 99:
		return codeErr(code, "les codes 99xxx désignent un pays étranger, pas une commune")
	}
	// 97x and 98x: three-character département or collectivity.
	d2 := code[2]
	ok := (dep == 97 && d2 >= '1' && d2 <= '8') || (dep == 98 && d2 >= '4' && d2 <= '9')
	if !ok {
		return codeErr(code, "le territoire d'outre-mer %s n'existe pas (971 à 978, 984 à 989)", code[:3])
	}
	if code[3:] == "00" {
		return codeErr(code, "le numéro de commune ne peut pas être 00")
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
