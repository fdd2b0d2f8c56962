/** @odoo-module **/
/*
 * Real-browser checks of the Emails tab, run by crm_gmail_sync/tests/test_ui.py.
 *
 * The Python test stores one email from the customer of "Deal with Acme" (subject below) and
 * starts one of these tours as a given user at /odoo. Each "absent" check is anchored on
 * something that must be present in the same rendering (the Reporting menu, the Internal Notes
 * page), so a tour can never pass on a page that simply has not loaded yet.
 */
import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";

const SUBJECT = "Tour: quote for 40 widgets";
const DEAL = "Deal with Acme";
const MENU_ROOT = "crm_gmail_sync.crm_gmail_message_menu_root";
const MENU_EMAILS = "crm_gmail_sync.crm_gmail_message_menu";
// Rendered in the same pass as every other CRM section; after "Emails" (sequence 20 > 6).
const MENU_REPORTING = "crm.crm_menu_report";

function openCrm() {
    return [
        stepUtils.showAppsMenuItem(),
        {
            content: "open the CRM app",
            trigger: ".o_app[data-menu-xmlid='crm.crm_menu_root']",
            run: "click",
        },
        {
            // every section is a direct entry: none hidden in the "+" overflow dropdown
            content: "the CRM sections are rendered, none in the overflow menu",
            trigger: `.o_menu_sections:has([data-menu-xmlid='${MENU_REPORTING}']):not(:has(.o_menu_sections_more))`,
        },
    ];
}

/*
 * The test assigns the deal to the tour user, so it is on "My Pipeline", the page the CRM app
 * opens on. Only a tour that left the pipeline navigates back: clicking the menu while the
 * pipeline is already shown would race the reload of the same view.
 */
function openDeal({ viaMenu }) {
    const navigate = [
        {
            content: "open the pipeline (Sales > My Pipeline)",
            trigger: ".o_menu_sections button[data-menu-xmlid='crm.crm_menu_sales']",
            run: "click",
        },
        {
            trigger: ".dropdown-item[data-menu-xmlid='crm.menu_crm_opportunities']",
            run: "click",
        },
    ];
    return [
        ...(viaMenu ? navigate : []),
        {
            content: "open the deal",
            trigger: `.o_kanban_view .o_kanban_record:contains('${DEAL}')`,
            run: "click",
        },
        {
            content: "the deal's form is open",
            trigger: `.o_form_view .o_breadcrumb .active:contains('${DEAL}')`,
        },
    ];
}

registry.category("web_tour.tours").add("crm_gmail_sync_emails_tab_shown", {
    steps: () => [
        ...openCrm(),
        {
            content: "open the Emails top menu",
            trigger: `.o_menu_sections button[data-menu-xmlid='${MENU_ROOT}']:contains('Emails')`,
            run: "click",
        },
        {
            content: "open the Emails list",
            trigger: `.dropdown-item[data-menu-xmlid='${MENU_EMAILS}']:contains('Emails')`,
            run: "click",
        },
        {
            content: "the synced email is listed with its subject",
            trigger: `.o_list_view .o_data_row td[name='subject']:contains('${SUBJECT}')`,
        },
        ...openDeal({ viaMenu: true }),
        {
            content: "open the Emails page of the deal",
            trigger: ".o_form_view .o_notebook .nav-link[name='gmail_emails']:contains('Emails')",
            run: "click",
        },
        {
            content: "the Emails page lists the customer's email",
            trigger: `.o_notebook .tab-pane.active .o_field_widget[name='gmail_conversation_ids'] .o_data_row td[name='subject']:contains('${SUBJECT}')`,
        },
    ],
});

registry.category("web_tour.tours").add("crm_gmail_sync_emails_tab_hidden", {
    steps: () => [
        ...openCrm(),
        {
            content: "no Emails top menu",
            trigger: `.o_menu_sections:has([data-menu-xmlid='${MENU_REPORTING}']):not(:has([data-menu-xmlid='${MENU_ROOT}'])):not(:has([data-menu-xmlid='${MENU_EMAILS}']))`,
        },
        {
            content: "no top menu entry is called Emails either",
            trigger: ".o_menu_sections:not(:has(:contains('Emails')))",
        },
        ...openDeal({ viaMenu: false }),
        {
            content: "the deal's notebook has no Emails page",
            trigger: ".o_form_view .o_notebook:has(.nav-link[name='internal_notes']):not(:has(.nav-link[name='gmail_emails'])):not(:has(.nav-link:contains('Emails')))",
        },
    ],
});
