package web

// French labels for what the pages show, and what to do next for each
// problem. Codes stay in the API; people read these.

var kindLabels = map[string]string{
	"naissance": "Naissance", "mariage": "Mariage", "deces": "Décès", "reconnaissance": "Reconnaissance",
}

var stateLabels = map[string]string{
	"expected":  "Fichier attendu",
	"received":  "Reçu, en vérification",
	"validated": "Vérifié, en scellement",
	"sealed":    "Scellé, en archivage",
	"archived":  "Archivé",
	"rejected":  "Refusé au dépôt",
	"stalled":   "Bloqué (incident technique)",
}

var transmissionLabels = map[string]string{
	"pending":      "En attente d'envoi",
	"sent":         "Envoyé, accusé de réception attendu",
	"acknowledged": "Reçu par le registre (accusé de réception)",
	"refused":      "Refusé par le registre",
	"retrying":     "Registre indisponible, nouvel essai prévu",
	"overdue":      "Accusé de réception en retard, renvoi prévu",
	"dead":         "Abandonné après de nombreux essais",
}

var attentionLabels = map[string]string{
	"rejected": "Refusé au dépôt",
	"stalled":  "Bloqué",
	"refused":  "Refusé par un registre",
	"dead":     "Transmission abandonnée",
	"overdue":  "Accusé de réception en retard",
}

var purposeLabels = map[string]string{
	"delivrance_copie": "Délivrance d'une copie ou d'un extrait",
	"mise_a_jour":      "Mise à jour (mention, rectification)",
	"controle":         "Contrôle",
	"contentieux":      "Contentieux",
	"archivage":        "Archivage",
	"autre":            "Autre",
}

var outcomeLabels = map[string]string{
	"acknowledged":    "accusé de réception reçu",
	"sent":            "envoyé, accusé attendu",
	"refused":         "refusé par le registre",
	"refused_locally": "refusé avant envoi (données manquantes)",
	"failed":          "registre injoignable ou en erreur",
}

var roleLabels = map[string]string{
	"hub": "opérateur", "townhall": "mairie", "auditor": "contrôle", "admin": "administration",
}

// nextSteps says what to do about a rejected act, by reason code.
var nextSteps = map[string]string{
	"not_pdf":                 "Le fichier n'est pas un PDF. Numérisez l'acte en PDF et déposez-le à nouveau.",
	"pdf_malformed":           "Le PDF est endommagé. Exportez-le de nouveau depuis le logiciel de numérisation et déposez-le à nouveau.",
	"pdf_encrypted":           "Le PDF est protégé par un mot de passe. Enregistrez-le sans protection et déposez-le à nouveau.",
	"pdf_active_content":      "Le PDF contient du code ou des actions automatiques. Imprimez-le en PDF (ou réexportez la numérisation) et déposez-le à nouveau.",
	"pdf_embedded_files":      "Le PDF contient des pièces jointes. Déposez l'acte seul, sans fichier joint.",
	"pdf_too_large":           "Le fichier dépasse la taille admise. Numérisez à une résolution plus basse (300 ppp suffisent) et déposez-le à nouveau.",
	"pdf_too_many_pages":      "L'acte a trop de pages. Vérifiez qu'un seul acte est dans le fichier.",
	"pdf_decompression_limit": "Une image du PDF est démesurée une fois décompressée. Numérisez de nouveau à une résolution normale.",
	"pdf_resource_limit":      "Le PDF n'a pas pu être vérifié dans les limites de temps et de mémoire. Réexportez-le et déposez-le à nouveau ; si cela se reproduit, contactez l'opérateur.",
	"checksum_mismatch":       "Le fichier reçu n'est pas celui décrit par l'index (empreinte ou taille). Déposez de nouveau le bon fichier avec son index.",
	"manifest_invalid":        "Les données d'index de cet acte sont incomplètes ou mal formées. Corrigez l'index (le message indique le champ) et déposez-le à nouveau.",
	"file_name_invalid":       "Le nom du fichier est refusé. Renommez-le sans dossier ni caractère spécial.",
	"file_missing":            "Le fichier annoncé n'est pas arrivé. Déposez-le à nouveau avec son index.",
	"file_duplicate":          "Le même nom de fichier figure deux fois dans l'index. Corrigez l'index.",
	"commune_invalid":         "Le code commune n'existe pas au code officiel géographique. Corrigez-le dans l'index.",
	"commune_not_member":      "La commune n'est pas adhérente de l'opérateur qui a déposé l'acte. Vérifiez le code commune.",
	"date_invalid":            "Les dates de l'acte sont impossibles ou incohérentes. Corrigez-les dans l'index.",
	"duplicate_act":           "Cet acte a déjà été archivé avec un contenu différent. S'il s'agit d'une nouvelle version (mention, rectification), indiquez la version remplacée et le motif.",
	"index_conflict":          "Les données d'index contredisent celles d'une version déjà archivée. Vérifiez l'index.",
	"revision_conflict":       "La version remplacée indiquée n'est pas la dernière version archivée. Vérifiez l'empreinte indiquée dans « replaces ».",
	"persons_invalid":         "Les personnes de l'acte sont incomplètes ou incohérentes. Corrigez l'index.",
}

// refusalSteps says what to do about a refused or abandoned transmission.
var refusalSteps = map[string]string{
	"refused": "Le registre a refusé cet acte pour le motif indiqué. Corrigez ce qui est en cause (un nouveau dépôt crée une nouvelle version), ou demandez à l'opérateur de relancer la transmission si le refus est levé.",
	"dead":    "Le registre est resté injoignable. L'opérateur peut relancer la transmission ; rien n'est perdu.",
	"overdue": "L'acte a été envoyé mais le registre n'a pas encore accusé réception. Il sera renvoyé automatiquement ; rien à faire pour l'instant.",
	"stalled": "Un incident technique a bloqué le traitement. L'opérateur peut le relancer ; rien n'est perdu.",
}
