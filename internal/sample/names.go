package sample

// Fictitious but plausible names and places, with a Rouergue flavour.

var surnames = []string{
	"MARTIN", "BOUSQUET", "VIDAL", "CAYLA", "BOYER", "FABRE", "MAUREL", "VIGUIER",
	"LACOMBE", "ROUQUETTE", "CALMELS", "COSTES", "GINESTE", "BOUDOU", "SÉGUIER",
	"DELMAS", "CASTAN", "ALBOUY", "MAJOREL", "ANDRIEU", "BESSIÈRE", "CABROL",
	"FALGUIÈRES", "GAUBERT", "TROUCHE", "ROUX", "BARRAU", "CONSTANS", "MOULY",
	"ESCANDE", "FOURNIER", "GRIMAL", "LAURENS", "MÉJANE", "PUECH", "SOULIÉ",
	"VERGNES", "CARRIÈRE", "AUSSEL", "BERTHOMIEU", "DE LAGARDE", "VIDAL-MAUREL",
	"N'DIAYE", "DA SILVA", "BENHAMOU", "NGUYEN",
}

var givenOldM = []string{"Jean", "Pierre", "Joseph", "Louis", "Marcel", "Henri", "André", "René",
	"Paul", "Émile", "Lucien", "Raymond", "Étienne", "Gaston", "Firmin", "Urbain", "Casimir"}
var givenOldF = []string{"Marie", "Jeanne", "Germaine", "Marguerite", "Louise", "Yvonne", "Rose",
	"Hélène", "Suzanne", "Madeleine", "Odette", "Léontine", "Augustine", "Rosalie", "Françoise"}
var givenNewM = []string{"Lucas", "Hugo", "Louis", "Gabriel", "Jules", "Arthur", "Raphaël", "Léo",
	"Thomas", "Nathan", "Mathis", "Adam", "Noé", "Théo", "Antoine", "Maxime", "Julien"}
var givenNewF = []string{"Emma", "Léa", "Chloé", "Manon", "Camille", "Inès", "Jade", "Louise",
	"Alice", "Lina", "Zoé", "Clémence", "Margaux", "Élodie", "Pauline", "Anaïs", "Juliette"}

// places are birth places outside the register's commune, written
// "Commune (Département)".
var places = []string{
	"Rodez (Aveyron)", "Millau (Aveyron)", "Villefranche-de-Rouergue (Aveyron)",
	"Espalion (Aveyron)", "Decazeville (Aveyron)", "Saint-Affrique (Aveyron)",
	"Onet-le-Château (Aveyron)", "Laguiole (Aveyron)", "Albi (Tarn)", "Toulouse (Haute-Garonne)",
	"Montpellier (Hérault)", "Aurillac (Cantal)", "Cahors (Lot)", "Figeac (Lot)",
	"Mende (Lozère)", "Clermont-Ferrand (Puy-de-Dôme)", "Paris 14e Arrondissement (Paris)",
	"Lyon 3e Arrondissement (Rhône)",
}

// communeNames names the communes the sample knows; others print their code.
var communeNames = map[string]string{
	"12202": "Rodez",
	"12145": "Millau",
	"12300": "Villefranche-de-Rouergue",
	"12208": "Saint-Affrique",
	"12089": "Decazeville",
	"12098": "Espalion",
}

var departements = map[string]string{"12": "Aveyron", "81": "Tarn", "31": "Haute-Garonne", "46": "Lot", "15": "Cantal", "48": "Lozère"}

func communeName(code string) string {
	if n, ok := communeNames[code]; ok {
		return n
	}
	return "Commune " + code
}

// communePlace returns "Rodez (Aveyron)" for "12202".
func communePlace(code string) string {
	n := communeName(code)
	if len(code) >= 2 {
		if d, ok := departements[code[:2]]; ok {
			return n + " (" + d + ")"
		}
	}
	return n
}
