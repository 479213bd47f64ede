package seda

import "encoding/xml"

// The structs below follow the element order of the SEDA 2.3 schemas;
// encoding/xml writes fields in declaration order, so the order here IS
// the order on the wire. Optional elements use omitempty or pointers.

// xmlCodeListVersions is CodeListVersionsType (seda-2.3-main.xsd).
type xmlCodeListVersions struct {
	ReplyCodeListVersion                  string `xml:"ReplyCodeListVersion,omitempty"`
	MessageDigestAlgorithmCodeListVersion string `xml:"MessageDigestAlgorithmCodeListVersion,omitempty"`
	MimeTypeCodeListVersion               string `xml:"MimeTypeCodeListVersion,omitempty"`
	DataObjectVersionCodeListVersion      string `xml:"DataObjectVersionCodeListVersion,omitempty"`
	AppraisalRuleCodeListVersion          string `xml:"AppraisalRuleCodeListVersion,omitempty"`
	AccessRuleCodeListVersion             string `xml:"AccessRuleCodeListVersion,omitempty"`
}

// xmlOrganization is OrganizationType / OrganizationWithIdType.
type xmlOrganization struct {
	Identifier string      `xml:"Identifier"`
	Metadata   *xmlOrgMeta `xml:"OrganizationDescriptiveMetadata"`
}

// xmlOrgMeta is OrganizationDescriptiveMetadata (OpenType: elements of
// another namespace only); etatcivil puts the organisation's name there.
type xmlOrgMeta struct {
	Name string `xml:"urn:etatcivil:seda:1 Name"`
}

// xmlDataObjectPackage is DataObjectPackageType.
type xmlDataObjectPackage struct {
	BinaryDataObjects   []xmlBinaryDataObject  `xml:"BinaryDataObject"`
	DescriptiveMetadata xmlDescriptiveMetadata `xml:"DescriptiveMetadata"`
	ManagementMetadata  xmlManagementMetadata  `xml:"ManagementMetadata"`
}

// xmlBinaryDataObject is BinaryDataObjectType.
type xmlBinaryDataObject struct {
	ID                   string       `xml:"id,attr"`
	DataObjectVersion    string       `xml:"DataObjectVersion,omitempty"`
	URI                  string       `xml:"Uri"`
	MessageDigest        xmlDigest    `xml:"MessageDigest"`
	Size                 int64        `xml:"Size"`
	FormatIdentification *xmlFormat   `xml:"FormatIdentification"`
	FileInfo             *xmlFileInfo `xml:"FileInfo"`
}

type xmlDigest struct {
	Algorithm string `xml:"algorithm,attr"`
	Value     string `xml:",chardata"`
}

type xmlFormat struct {
	FormatLitteral string `xml:"FormatLitteral,omitempty"`
	MimeType       string `xml:"MimeType,omitempty"`
}

type xmlFileInfo struct {
	Filename string `xml:"Filename"`
}

type xmlDescriptiveMetadata struct {
	ArchiveUnits []xmlArchiveUnit `xml:"ArchiveUnit"`
}

// xmlManagementMetadata is ManagementMetadataType.
type xmlManagementMetadata struct {
	LegalStatus                 string   `xml:"LegalStatus,omitempty"`
	OriginatingAgencyIdentifier string   `xml:"OriginatingAgencyIdentifier,omitempty"`
	SubmissionAgencyIdentifier  string   `xml:"SubmissionAgencyIdentifier,omitempty"`
	AppraisalRule               *xmlRule `xml:"AppraisalRule"`
}

// xmlRule is AppraisalRuleType or AccessRuleType (FinalAction only in the
// former).
type xmlRule struct {
	Rule        string `xml:"Rule"`
	StartDate   string `xml:"StartDate,omitempty"`
	FinalAction string `xml:"FinalAction,omitempty"`
}

// xmlManagement is ManagementType (ManagementGroup).
type xmlManagement struct {
	AppraisalRule *xmlRule `xml:"AppraisalRule"`
	AccessRule    *xmlRule `xml:"AccessRule"`
}

// xmlArchiveUnit is ArchiveUnitType: Management?, Content, then children
// (ArchiveUnit | DataObjectReference)*.
type xmlArchiveUnit struct {
	ID                   string             `xml:"id,attr"`
	Management           *xmlManagement     `xml:"Management"`
	Content              xmlContent         `xml:"Content"`
	ArchiveUnits         []xmlArchiveUnit   `xml:"ArchiveUnit"`
	DataObjectReferences []xmlDataObjectRef `xml:"DataObjectReference"`
}

type xmlDataObjectRef struct {
	DataObjectReferenceID string `xml:"DataObjectReferenceId"`
}

// xmlContent is DescriptiveMetadataContentType (BaseObjectGroup, in the
// ontology's order).
type xmlContent struct {
	DescriptionLevel                       string           `xml:"DescriptionLevel,omitempty"`
	Title                                  string           `xml:"Title,omitempty"`
	OriginatingSystemID                    string           `xml:"OriginatingSystemId,omitempty"`
	OriginatingAgencyArchiveUnitIdentifier string           `xml:"OriginatingAgencyArchiveUnitIdentifier,omitempty"`
	Description                            string           `xml:"Description,omitempty"`
	DocumentType                           string           `xml:"DocumentType,omitempty"`
	Language                               string           `xml:"Language,omitempty"`
	Version                                string           `xml:"Version,omitempty"`
	Keywords                               []xmlKeyword     `xml:"Keyword"`
	OriginatingAgency                      *xmlOrganization `xml:"OriginatingAgency"`
	Agents                                 []xmlAgent       `xml:"Agent"`
	Source                                 string           `xml:"Source,omitempty"`
	CreatedDate                            string           `xml:"CreatedDate,omitempty"`
	StartDate                              string           `xml:"StartDate,omitempty"`
	EndDate                                string           `xml:"EndDate,omitempty"`
	Events                                 []xmlEvent       `xml:"Event"`
}

type xmlKeyword struct {
	KeywordContent   string               `xml:"KeywordContent"`
	KeywordReference *xmlKeywordReference `xml:"KeywordReference"`
	KeywordType      string               `xml:"KeywordType,omitempty"`
}

type xmlKeywordReference struct {
	SchemeName string `xml:"schemeName,attr,omitempty"`
	Value      string `xml:",chardata"`
}

// xmlAgent is AgentType: PersonOrEntityGroup then BusinessGroup.
type xmlAgent struct {
	FirstName string `xml:"FirstName,omitempty"`
	BirthName string `xml:"BirthName,omitempty"`
	Role      string `xml:"Role,omitempty"`
}

// xmlEvent is EventType (seda-2.3-ontology.xsd).
type xmlEvent struct {
	EventIdentifier      string `xml:"EventIdentifier,omitempty"`
	EventTypeCode        string `xml:"EventTypeCode,omitempty"`
	EventType            string `xml:"EventType,omitempty"`
	EventDateTime        string `xml:"EventDateTime"`
	Outcome              string `xml:"Outcome,omitempty"`
	OutcomeDetail        string `xml:"OutcomeDetail,omitempty"`
	OutcomeDetailMessage string `xml:"OutcomeDetailMessage,omitempty"`
}

// xmlArchiveTransfer is the ArchiveTransfer element: MessageType, then
// BusinessMessageType, then ArchiveTransferType.
type xmlArchiveTransfer struct {
	XMLName            xml.Name              `xml:"fr:gouv:culture:archivesdefrance:seda:v2.3 ArchiveTransfer"`
	Comment            string                `xml:"Comment,omitempty"`
	Date               string                `xml:"Date"`
	MessageIdentifier  string                `xml:"MessageIdentifier"`
	ArchivalAgreement  string                `xml:"ArchivalAgreement,omitempty"`
	CodeListVersions   xmlCodeListVersions   `xml:"CodeListVersions"`
	DataObjectPackage  *xmlDataObjectPackage `xml:"DataObjectPackage"`
	ArchivalAgency     xmlOrganization       `xml:"ArchivalAgency"`
	TransferringAgency xmlOrganization       `xml:"TransferringAgency"`
}

// xmlArchiveTransferReply is the ArchiveTransferReply element:
// MessageType, BusinessMessageType, BusinessReplyMessageType, then
// ArchiveTransferReplyType.
type xmlArchiveTransferReply struct {
	XMLName                  xml.Name              `xml:"fr:gouv:culture:archivesdefrance:seda:v2.3 ArchiveTransferReply"`
	Comment                  string                `xml:"Comment,omitempty"`
	Date                     string                `xml:"Date"`
	MessageIdentifier        string                `xml:"MessageIdentifier"`
	ArchivalAgreement        string                `xml:"ArchivalAgreement,omitempty"`
	CodeListVersions         xmlCodeListVersions   `xml:"CodeListVersions"`
	DataObjectPackage        *xmlDataObjectPackage `xml:"DataObjectPackage"`
	ReplyCode                string                `xml:"ReplyCode,omitempty"`
	Operation                *xmlOperation         `xml:"Operation"`
	MessageRequestIdentifier string                `xml:"MessageRequestIdentifier"`
	GrantDate                string                `xml:"GrantDate,omitempty"`
	ArchivalAgency           xmlOrganization       `xml:"ArchivalAgency"`
	TransferringAgency       xmlOrganization       `xml:"TransferringAgency"`
}

type xmlOperation struct {
	Events []xmlEvent `xml:"Event"`
}

func organization(id Identifier) xmlOrganization {
	o := xmlOrganization{Identifier: id.ID}
	if id.Name != "" {
		o.Metadata = &xmlOrgMeta{Name: id.Name}
	}
	return o
}

func identifier(o xmlOrganization) Identifier {
	id := Identifier{ID: o.Identifier}
	if o.Metadata != nil {
		id.Name = o.Metadata.Name
	}
	return id
}

// marshal writes v with the XML declaration, indented.
func marshal(v any) ([]byte, error) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}
